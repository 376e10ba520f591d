# Unpuzzle developer commands. Everything runs from the virtualenv in .venv.
#   make install    create .venv and install every service, the shared library, the tools
#   make up         the whole suite behind the gateway at http://localhost:8080 (Ctrl-C stops)
#   make test       every test suite, against real PostgreSQL, NATS JetStream and Redis
#   make lint       ruff check + ruff format --check       make format   apply ruff's fixes
#   make migrate    provision each service's role and schema and run its migrations
#   make seed       load the demo catalog into the dev database (after make migrate / up)
#   make analytics-rebuild  recompute the analytics rollups from the stored facts
#   make contracts  regenerate tests/contract/openapi/*.json from the services' code
#   make bench      run the benchmarks (bench/run.py)
#   make constraints  re-pin every transitive dependency (constraints.txt) from .venv
#   make clean      remove caches and the dev stack's logs and runtime files (keeps secrets)
# Variables: PYTHON (interpreter for the venv, default python3.11), PYTEST_ARGS,
# UP_ARGS (extra `python -m devstack up` options, e.g. UP_ARGS="--port 9090").

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
UP_ARGS ?=

# Only the suites present in this checkout (pytest refuses a path that does not exist).
TEST_PATHS := $(wildcard libs/common/tests services/*/tests gateway/tests devstack/tests \
	tests/contract tests/deploy tests/e2e tests/faults)

.PHONY: help install up test lint format migrate seed analytics-rebuild confirm-payment contracts bench constraints clean

help:
	@sed -n '2,15p' Makefile | sed 's/^# \{0,1\}//'

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -r requirements-dev.txt

up: $(PY)
	$(PY) -m devstack up $(UP_ARGS)

test: $(PY)
	$(PY) -m pytest $(TEST_PATHS) $(PYTEST_ARGS)

lint: $(PY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(PY)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

migrate: $(PY)
	$(PY) -m devstack migrate

seed: $(PY)
	eval "$$($(PY) -m devstack env courses)" && $(PY) -m courses_service seed

analytics-rebuild: $(PY)
	eval "$$($(PY) -m devstack env analytics)" && $(PY) -m analytics_service rebuild

confirm-payment: $(PY)  # dev: pay PAYMENT=<payment id> as Stripe would (signed webhook)
	eval "$$($(PY) -m devstack env payments)" && $(PY) -m payments_service confirm $(PAYMENT)

contracts: $(PY)
	$(PY) tests/contract/regenerate.py
	$(PY) tests/contract/regenerate_events.py

bench: $(PY)
	@if [ -f bench/run.py ]; then $(PY) bench/run.py; else echo "bench/run.py not written yet"; fi

constraints: $(PY)
	@{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf .pytest_cache .ruff_cache bench/out
	rm -rf .dev/logs .dev/gateway .dev/mail
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	@echo "kept .dev/secrets.env and the database (auth's signing keys are encrypted with its"
	@echo "secret); to start over: rm -rf .dev && make up UP_ARGS=--fresh"
