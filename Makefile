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
DEMO_KEYS ?= $(HOME)/.aecc/demo-keys
DEMO_SITE ?= $(HOME)/.aecc/demo-site

demo-data: venv tools
	$(BIN)/python -m harness.demodata $(DEMO_ENV)
	chmod -R a+rX $(DEMO_ENV)

images: venv engine
	$(AECC) images build --target runtime

doctor: venv engine
	$(AECC) doctor

# The organizers' night on the bundled example: check the machine, build (or find) the layered
# images, validate the example encoder, make a signing key (once), score it with X-ARES on the
# generated demo suite and sign the result, verify the signature, and publish both leaderboards
# (the demo's tasks are custom tasks: ranked with their own weights and their metrics' bounds).
demo: images demo-data
	$(AECC) doctor
	$(AECC) validate examples/good_encoder
	test -f $(DEMO_KEYS)/signing.key || $(AECC) keys init --out $(DEMO_KEYS)
	$(AECC) score examples/good_encoder --data $(DEMO_ENV) --tasks demo_tasks/*_task.py --out $(DEMO_OUT) \
		--key $(DEMO_KEYS)/signing.key
	$(AECC) verify --pubkey $(DEMO_KEYS)/signing.pub $(DEMO_OUT)
	$(AECC) leaderboard $(DEMO_OUT) --pubkey $(DEMO_KEYS)/signing.pub --out $(DEMO_SITE)
	@echo "demo: the leaderboard page is $(DEMO_SITE)/index.html"

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
