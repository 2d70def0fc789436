# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (Python environment, Docker engine, images) and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AECC := $(BIN)/aecc
PYTEST_ARGS ?=

.PHONY: all venv engine images demo validate test test-fast doctor cleanup clean

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

images: venv engine
	$(AECC) images build --target runtime

doctor: venv engine
	$(AECC) doctor

# The main job on the bundled example: check the machine, build (or find) the layered images,
# show what a submission sees from inside the T4-shaped sandbox, then validate the example.
demo: images
	$(AECC) doctor
	$(AECC) images list
	$(AECC) sandbox run --stage check --image runtime -- python -m checker.probe
	$(AECC) validate examples/good_encoder

# A participant's check before e-mailing: `make validate SUBMISSION=my.zip`.
validate: images
	$(AECC) validate $(SUBMISSION) $(VALIDATE_ARGS)

test: images
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything but the slow image builds (developers iterating on the runner).
test-fast: venv engine
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

cleanup: venv
	$(AECC) cleanup

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
