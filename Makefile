# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (Python environment, Docker engine, images) and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AECC := $(BIN)/aecc
PYTEST_ARGS ?=

.PHONY: all venv engine tools images demo-data demo validate test test-fast test-unit doctor cleanup clean bench

SUBMISSION ?= examples/good_encoder

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

engine:
	bash scripts/engine-setup.sh

# Host tools the generated demo/test data needs (espeak-ng speaks the digits task).
tools:
	bash scripts/host-tools.sh

DEMO_ENV ?= $(HOME)/.aecc/demo-env
DEMO_OUT ?= $(HOME)/.aecc/demo-results

demo-data: venv tools
	$(BIN)/python -m harness.demodata $(DEMO_ENV)
	chmod -R a+rX $(DEMO_ENV)

images: venv engine
	$(AECC) images build --target runtime

doctor: venv engine
	$(AECC) doctor

# The main job on the bundled example: check the machine, build (or find) the layered images,
# validate the example encoder, then score it with X-ARES on the generated demo suite.
demo: images demo-data
	$(AECC) doctor
	$(AECC) validate examples/good_encoder
	$(AECC) score examples/good_encoder --data $(DEMO_ENV) --tasks demo_tasks/*_task.py --out $(DEMO_OUT)

# A participant's check before e-mailing: `make validate SUBMISSION=my.zip`.
validate: images
	$(AECC) validate $(SUBMISSION) $(VALIDATE_ARGS)

test: images tools
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything but the slow image builds (developers iterating on the runner).
test-fast: venv engine tools
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# The tests that need no container engine and no browser (logic, parsers, schemas, the journal):
# about a minute, on any machine with the Python environment and the host tools.
test-unit: venv tools
	$(BIN)/pytest -m "not engine and not browser and not slurm" $(PYTEST_ARGS)

cleanup: venv
	$(AECC) cleanup

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# Speed and memory against bare X-ARES and the targets (issue 6); writes bench/results/*.json.
bench: images demo-data
	$(BIN)/python bench/run.py --demo-env $(DEMO_ENV) $(BENCH_ARGS)
