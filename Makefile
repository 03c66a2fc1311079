# postback-relay. `make run` runs the relay locally; `make test` runs every check; `make deploy` deploys it.
# Each installs what it needs into .venv (the SAM CLI and uv into .venv-tools, checkov into
# .venv-checkov) first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
TOOLS_VENV ?= .venv-tools
CHECKOV_VENV ?= .venv-checkov
# The Lambda runtime's Python version: template.yaml's Runtime and src/Makefile's wheels say the same
# (tests/infrastructure/test_template.py holds the three together).
RUNTIME_VERSION := 3.13
PYTHON ?= $(shell scripts/find-python.sh $(RUNTIME_VERSION))
RUNTIME_PYTHON ?= $(shell scripts/find-python.sh $(RUNTIME_VERSION) --exact 2>/dev/null)
PY := $(VENV)/bin/python
EVENT ?= events/stripe/checkout.session.completed.json

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

# `make build` and `make deploy` package with the runtime's own interpreter; without it the artifact would
# be built by nothing (an empty RUNTIME_PYTHON once made an artifact with no dependencies "succeed").
ifneq ($(filter build deploy,$(MAKECMDGOALS)),)
ifeq ($(strip $(RUNTIME_PYTHON)),)
$(error RUNTIME_PYTHON is empty: sam build needs python$(RUNTIME_VERSION) (the Lambda runtime). Install it \
(pyenv install $(RUNTIME_VERSION), or your system's python$(RUNTIME_VERSION) package) or pass RUNTIME_PYTHON=/path/to/python$(RUNTIME_VERSION))
endif
endif

.PHONY: help run send events test lint template scan lock lock-check unit browser soak bench build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

# The locked runtime dependencies first, hash-checked, then the development tools (which leave them as they are).
$(VENV)/.installed: requirements-dev.txt src/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r src/requirements.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

run: $(VENV)/.installed ## run the relay on 127.0.0.1 (moto + TrafficStars sandbox; PORT=3000)
	$(PY) -m postback_relay_dev.run

send: $(VENV)/.installed ## sign EVENT (default: a Checkout purchase) now and POST it to the local relay
	@$(PY) -m postback_relay_dev.send $(EVENT)

events: $(VENV)/.installed ## re-sign events/ with the current time (for sam local invoke -e)
	$(PY) -m postback_relay_dev.send --write events/*/*.json

test: lint template unit ## every check: ruff, mypy, cfn-lint (+ serverless rules), checkov, sam validate, the lock, sam build, pytest

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

template: $(TOOLS_VENV)/.installed scan lock-check ## cfn-lint, sam validate --lint and (where the runtime's python exists) sam build
	$(TOOLS_VENV)/bin/cfn-lint template.yaml
	$(TOOLS_VENV)/bin/sam validate --lint
	@if [ -n "$(RUNTIME_PYTHON)" ]; then \
	  echo "sam build with $(RUNTIME_PYTHON)"; \
	  PATH="$$(dirname $(RUNTIME_PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build --build-dir .aws-sam/build >/dev/null && echo "sam build: ok"; \
	else \
	  echo "skipping sam build: the runtime's interpreter (python$(RUNTIME_VERSION)) is not installed here"; \
	fi

# Every finding is fixed or suppressed in template.yaml with its reason (Metadata: checkov / cfn-lint), so a
# new one fails here. checkov runs offline: --skip-download keeps it from asking Prisma Cloud for guidelines.
scan: $(TOOLS_VENV)/.installed $(CHECKOV_VENV)/.installed ## the scanners: cfn-lint's serverless rules and checkov
	$(TOOLS_VENV)/bin/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

# src/requirements.txt is src/requirements.in compiled by uv for the runtime (Python $(RUNTIME_VERSION), arm64 Linux):
# every transitive pin, with the sha256 of every file of each pinned version. `make lock` refreshes it on purpose;
# `make lock-check` (in `make test`) recompiles it keeping its pins and fails on any difference: the .in changed
# without a relock, a pin is missing or no longer satisfies the .in; then pip fetches each pinned wheel for the
# runtime and checks it against its hashes (an edited pin or hash fails there).
UV_COMPILE := $(TOOLS_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version $(RUNTIME_VERSION) \
  --python-platform aarch64-manylinux2014 --custom-compile-command "make lock"
lock: $(TOOLS_VENV)/.installed ## re-lock src/requirements.txt from src/requirements.in (newest versions)
	$(UV_COMPILE) --upgrade --output-file src/requirements.txt src/requirements.in

lock-check: $(TOOLS_VENV)/.installed ## src/requirements.txt is src/requirements.in locked, complete, with hashes
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && cp src/requirements.txt "$$scratch/requirements.txt" && \
	  $(UV_COMPILE) --output-file "$$scratch/requirements.txt" src/requirements.in && \
	  if ! diff -u src/requirements.txt "$$scratch/requirements.txt"; then \
	    echo "src/requirements.txt is not src/requirements.in locked: run make lock and commit it" >&2; exit 1; fi && \
	  $(TOOLS_VENV)/bin/python -m pip install --dry-run --quiet --disable-pip-version-check --require-hashes --no-deps \
	    --only-binary=:all: --platform manylinux2014_aarch64 --python-version $(RUNTIME_VERSION) \
	    --target "$$scratch/target" -r src/requirements.txt && echo "lock: ok (complete, and every hash matches PyPI's file)"

unit: $(VENV)/.installed browser ## pytest (unit, integration, local-run and headless-Chromium tests)
	$(PY) -m pytest

browser: ## Debian's chromium and chromium-driver for the click.js tests (apt-get, where root); else they skip
	scripts/install-browser.sh

soak: $(VENV)/.installed ## the long proof: MODEL_EXAMPLES (500) generated lifecycles, FAULT_FINISHED (10000) redeliveries
	MODEL_EXAMPLES=$${MODEL_EXAMPLES:-500} FAULT_FINISHED=$${FAULT_FINISHED:-10000} \
	  $(PY) -m pytest -q tests/integration/test_lifecycle_model.py tests/integration/test_tenant_model.py \
	  tests/integration/test_lifecycle_regressions.py

bench: $(VENV)/.installed ## the benchmark: cold start, warm time, AWS calls, memory and cost against their floors
	$(PY) -m bench $(BENCH_ARGS)

build: $(TOOLS_VENV)/.installed ## sam build (needs python3.13, the Lambda runtime's)
	PATH="$$(dirname $(RUNTIME_PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build

# The first deploy asks (sam deploy --guided) and saves the answers to samconfig.toml; every later one uses them.
# A saved configuration is a deploy section naming the region, which only --guided (or you) writes.
SAMCONFIG ?= samconfig.toml
deploy: build ## sam deploy: --guided the first time (README: Deploying), then with the saved answers
	@if $(PYTHON) scripts/saved-deploy-config.py $(SAMCONFIG); then \
	  $(TOOLS_VENV)/bin/sam deploy --config-file $(SAMCONFIG); \
	else \
	  echo "no saved deploy configuration in $(SAMCONFIG): sam deploy --guided (README: Deploying, the answers)"; \
	  $(TOOLS_VENV)/bin/sam deploy --guided --config-file $(SAMCONFIG); \
	fi

clean: ## remove virtual environments and build output
	rm -rf $(VENV) $(TOOLS_VENV) $(CHECKOV_VENV) .aws-sam .local
