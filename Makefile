# Two commands do all set-up on a fresh machine (README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
READY := $(VENV)/.ready
SAM_READY := $(SAM_VENV)/.ready
# sam and cfn-lint read the template offline; they only need a region and some credentials.
OFFLINE_AWS := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline SAM_CLI_TELEMETRY=0

.PHONY: demo setup test lint unit e2e browser chromium deploy-check bench fuzz load clean

$(READY): requirements-dev.txt src/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(SAM_READY): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

## demo: set up, then run the whole pipeline locally (moto, no AWS account) with the demo configuration
demo: $(READY)
	$(VENV)/bin/switchboard local

## setup: only the set-up: .venv (switchboard, tests) and .venv-sam (SAM CLI), each pinned
setup: $(READY) $(SAM_READY)

## test: set up, then ruff, mypy, cfn-lint, sam validate --lint, unit tests, end-to-end tests on a local stack, the chat
## widget in headless Chromium and the deploy rehearsal
test: lint unit e2e browser deploy-check

lint: $(READY) $(SAM_READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(OFFLINE_AWS) $(VENV)/bin/cfn-lint template.yaml
	$(OFFLINE_AWS) $(SAM_VENV)/bin/sam validate --lint

unit: $(READY)
	$(VENV)/bin/pytest -q -n 2 -m "not e2e and not slow and not deploy and not browser" tests

# Two workers, a test module each at a time (--dist loadfile): each module's own local stack stays in one process,
# and each worker starts its own session stack. Halves the end-to-end time on a 2-core machine.
e2e: $(READY)
	$(VENV)/bin/pytest -q -n 2 --dist loadfile -m e2e tests/e2e

## browser: the chat widget and the demo page in real headless Chromium against a local stack (tests/browser)
browser: $(READY) chromium
	$(VENV)/bin/pytest -q -m browser tests/browser

# Debian's chromium and chromium-driver: installed when missing and we are root (CI); otherwise the one command to run.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else \
	    echo "The browser tests need Chromium and its driver. Run:  sudo apt-get install -y chromium chromium-driver" >&2; \
	    exit 1; \
	  fi; \
	fi

## deploy-check: `sam build` as on a fresh machine (no python3.12, no Docker) and its artifacts inspected; `sam deploy
## --guided` answered with Enter; the stack created by moto's CloudFormation from SAM's transform; `switchboard --stack`
## and the built handlers run against it (tests/deploy)
deploy-check: $(READY) $(SAM_READY)
	$(VENV)/bin/pytest -q -m deploy tests/deploy

## fuzz: the forgery properties with >= 10,000 cases (HYPOTHESIS_PROFILE=fuzz); prints the cases tried per target
fuzz: $(READY)
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest -q tests/property

## bench: the benchmark suite; each prints a ratio against a floor measured in the same run
bench: $(READY)
	$(VENV)/bin/python bench/edge_ack.py
	$(VENV)/bin/python bench/edge_batch.py
	$(VENV)/bin/python bench/cold_start.py
	$(VENV)/bin/python bench/line_parse.py
	$(VENV)/bin/python bench/aws_calls.py
	$(VENV)/bin/python bench/jwt_validate.py
	$(VENV)/bin/python bench/crm_calls.py
	$(VENV)/bin/python bench/throughput.py
	$(VENV)/bin/python bench/chat_latency.py
	$(VENV)/bin/python bench/reply_latency.py

## load: load and fault run on the local stack (duplicates x3, CRM 503/429, crashes, poison); fails unless 0 lost, 0 duplicated
load: $(READY)
	$(VENV)/bin/python tests/load/load_fault.py

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mypy_cache .pytest_cache .ruff_cache
