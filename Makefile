# cost_assets: set-up, pipeline, tests and UI. `make help` lists the targets.
# Needs only python3 (3.11), make and apt; everything else is installed by the targets themselves.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME_DIR := $(CURDIR)/.dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
DAYS ?=
PYTEST_ARGS ?=

# System packages (Debian 12) the tests need: a PostgreSQL 15 server and Chromium.
PG_BIN := /usr/lib/postgresql/15/bin
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# DuckDB 1.x compatibility leg: the warehouse tests again, with duckdb 1.x shadowing the venv's 2.x.
DUCKDB1_VERSION ?= 1.5.6
DUCKDB1_DIR := $(VENV)/duckdb1
DUCKDB1_STAMP := $(DUCKDB1_DIR)/.installed-$(DUCKDB1_VERSION)

.PHONY: help .venv install run mock ui bench test test-fast test-duckdb1 system-deps lint lock clean clean-data

help: ## list the targets
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z0-9_.-]+:.*?## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.venv: install ## same as install
install: $(STAMP) ## create .venv and install the project with its dev tools, pinned by constraints.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml or constraints.txt changed since the last install.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(DAGSTER_HOME_DIR)/dagster.yaml: deploy/local-dagster.yaml
	mkdir -p $(DAGSTER_HOME_DIR)
	cp deploy/local-dagster.yaml $@

run: install $(DAGSTER_HOME_DIR)/dagster.yaml ## set up, then materialize the last 7 complete UTC days of the simulated workspace (with examples/budgets.yaml and the simulated cloud bill) and print a summary
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) COST_ASSETS_BUDGETS=$${COST_ASSETS_BUDGETS-examples/budgets.yaml} \
	  COST_ASSETS_CLOUD_BILL=$${COST_ASSETS_CLOUD_BILL-simulated} \
	  $(BIN)/cost-assets run $(if $(DAYS),--days $(DAYS))

mock: install ## the simulated workspace over the Databricks APIs on 127.0.0.1:8765 (prints the variables to export)
	$(BIN)/cost-assets mock-server --days $(or $(DAYS),7)

ui: install $(DAGSTER_HOME_DIR)/dagster.yaml ## Dagster UI + daemon on http://127.0.0.1:3000 (instance in .dagster_home, shared with make run; same budgets and cloud bill)
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) COST_ASSETS_BUDGETS=$${COST_ASSETS_BUDGETS-examples/budgets.yaml} \
	  COST_ASSETS_CLOUD_BILL=$${COST_ASSETS_CLOUD_BILL-simulated} \
	  $(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

# Every test runs against a throwaway PostgreSQL server (scripts/pg.sh: started on a free port of
# 127.0.0.1, always stopped and deleted afterwards), then the DuckDB 1.x leg runs. Both legs run even if
# the first fails; the target fails if either does. DAGSTER_HOME is unset so no test can reach a real
# instance. `make test PYTEST_ARGS='-k postgres -x'` passes arguments to the main leg.
test: install system-deps $(DUCKDB1_STAMP) ## set up, start a throwaway PostgreSQL 15, run all tests, stop it; then the DuckDB 1.x leg
	@rc=0; \
	env -u DAGSTER_HOME bash scripts/pg.sh run -- $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	$(MAKE) --no-print-directory test-duckdb1 || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

# The core tier: every test not marked e2e (tests/conftest.py lists the e2e modules: Dagster jobs, HTTP
# servers, subprocesses, PostgreSQL, browser). In-process, no system packages; `make test` runs everything.
test-fast: install ## the fast core tier only: tests not marked e2e (no jobs, servers, PostgreSQL or browser)
	env -u DAGSTER_HOME $(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

test-duckdb1: install $(DUCKDB1_STAMP) ## tests/test_warehouse.py with duckdb 1.x instead of 2.x
	@if [ ! -f tests/test_warehouse.py ]; then echo "DuckDB 1.x leg: no tests/test_warehouse.py, nothing to run"; exit 0; fi; \
	echo "== DuckDB 1.x leg: tests/test_warehouse.py with duckdb $(DUCKDB1_VERSION)"; \
	PYTHONPATH=$(DUCKDB1_DIR) $(BIN)/python -c 'import duckdb, sys; v = duckdb.__version__; print("duckdb", v, "from", duckdb.__file__); sys.exit(not v.startswith("1."))' && \
	env -u DAGSTER_HOME PYTHONPATH=$(DUCKDB1_DIR) $(BIN)/pytest -q tests/test_warehouse.py

$(DUCKDB1_STAMP): | $(STAMP)
	rm -rf $(DUCKDB1_DIR)
	$(BIN)/python -m pip install --quiet --no-deps --target $(DUCKDB1_DIR) 'duckdb==$(DUCKDB1_VERSION)'
	touch $@

system-deps: ## install Debian's postgresql-15 and chromium when missing (apt-get; sudo unless root)
	@missing=""; \
	[ -x $(PG_BIN)/initdb ] || missing="$$missing postgresql-15"; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench: install ## engine benchmark: S/M/L vs the floor, original calculator, accuracy, Dagster day (rewrites benchmarks/RESULTS.md)
	POLARS_MAX_THREADS=2 $(BIN)/python benchmarks/bench_engine.py

lint: install ## ruff check and ruff format --check (rules and line length: ruff.toml)
	@rc=0; \
	$(BIN)/ruff check . || rc=$$?; \
	$(BIN)/ruff format --check . || rc=$$?; \
	exit $$rc

# Resolves pyproject.toml afresh in a temporary venv (newest versions it allows) and pins the result.
lock: ## re-resolve the dependencies from pyproject.toml and rewrite constraints.txt
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet -e '.[dev]'; \
	{ echo "# Pins of the whole installed set: make install uses pip install -c constraints.txt -e '.[dev]'."; \
	  echo "# Generated by 'make lock' (a fresh venv, pip install -e '.[dev]', pip freeze --exclude-editable)."; \
	  echo "# Edit pyproject.toml, then run 'make lock'; don't edit the pins by hand."; \
	  "$$tmp/venv/bin/python" -m pip freeze --exclude-editable; } > constraints.txt.new; \
	mv constraints.txt.new constraints.txt; \
	echo "constraints.txt: $$(grep -vc '^#' constraints.txt) pins"

clean: ## remove caches, build files and install stamps (keeps .venv, data/ and .dagster_home)
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist $(DUCKDB1_DIR) $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

clean-data: ## remove the pipeline's output (data/) and the local Dagster instance (.dagster_home)
	rm -rf data .dagster_home
