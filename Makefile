# postback-relay. `make run` runs the relay locally; `make test` runs every check. Both install what they
# need into .venv (and the SAM CLI into .venv-tools) first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
TOOLS_VENV ?= .venv-tools
PYTHON ?= $(shell scripts/find-python.sh 3.12)
RUNTIME_PYTHON := $(shell scripts/find-python.sh 3.12 --exact 2>/dev/null)
PY := $(VENV)/bin/python
EVENT ?= events/stripe/checkout.session.completed.json

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help run send events test lint template unit browser soak bench build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(VENV)/.installed: requirements-dev.txt src/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

run: $(VENV)/.installed ## run the relay on 127.0.0.1 (moto + TrafficStars sandbox; PORT=3000)
	$(PY) -m postback_relay.local.run

send: $(VENV)/.installed ## sign EVENT (default: a Checkout purchase) now and POST it to the local relay
	$(PY) -m postback_relay.local.send $(EVENT)

events: $(VENV)/.installed ## re-sign events/ with the current time (for sam local invoke -e)
	$(PY) -m postback_relay.local.send --write events/*/*.json

test: lint template unit ## every check: ruff, mypy, cfn-lint, sam validate --lint, sam build, pytest

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

template: $(TOOLS_VENV)/.installed ## cfn-lint, sam validate --lint and (where python3.12 exists) sam build
	$(TOOLS_VENV)/bin/cfn-lint template.yaml
	$(TOOLS_VENV)/bin/sam validate --lint
	@if [ -n "$(RUNTIME_PYTHON)" ]; then \
	  echo "sam build with $(RUNTIME_PYTHON)"; \
	  PATH="$$(dirname $(RUNTIME_PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build --build-dir .aws-sam/build >/dev/null && echo "sam build: ok"; \
	else \
	  echo "skipping sam build: the runtime's interpreter (python3.12) is not installed here"; \
	fi

unit: $(VENV)/.installed browser ## pytest (unit, integration, local-run and headless-Chromium tests)
	$(PY) -m pytest

browser: ## Debian's chromium and chromium-driver for the click.js tests (apt-get, where root); else they skip
	scripts/install-browser.sh

soak: $(VENV)/.installed ## the long proof: MODEL_EXAMPLES (500) generated lifecycles, FAULT_FINISHED (10000) redeliveries
	MODEL_EXAMPLES=$${MODEL_EXAMPLES:-500} FAULT_FINISHED=$${FAULT_FINISHED:-10000} \
	  $(PY) -m pytest -q tests/test_lifecycle_model.py tests/test_lifecycle_regressions.py

bench: $(VENV)/.installed ## the benchmark: cold start, warm time, AWS calls, memory and cost against their floors
	$(PY) -m bench $(BENCH_ARGS)

build: $(TOOLS_VENV)/.installed ## sam build
	PATH="$$(dirname $(RUNTIME_PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build

deploy: build ## sam deploy --guided
	$(TOOLS_VENV)/bin/sam deploy --guided

clean: ## remove virtual environments and build output
	rm -rf $(VENV) $(TOOLS_VENV) .aws-sam .local
