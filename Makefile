# CRM data platform. `make help` lists the targets.
# `make demo` and `make test` set everything up themselves and are safe to re-run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json

# No telemetry from any tool, ever.
export DO_NOT_TRACK := 1
export SCARF_ANALYTICS := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export GX_ANALYTICS_ENABLED := False

.DEFAULT_GOAL := help
.PHONY: help setup lock demo test lint format browser warehouse-start warehouse-stop clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

setup: $(STAMP) $(MANIFEST) ## create .venv, install the pinned stack, build the dbt manifest

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required: install it or run make PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(MANIFEST): $(STAMP) $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' 2>/dev/null | grep -v -e target/ -e logs/)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir . --target-path target
	@touch $@

lock: ## re-pin requirements.lock after changing dependencies in pyproject.toml
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev -o requirements.lock pyproject.toml

demo: setup ## start the warehouse, simulate 450 days, run the nightly DAG for 3 days, show results
	$(BIN)/crm warehouse start
	$(BIN)/crm demo

# Two pytest workers, a test file each at a time: the end-to-end module (the
# longest) on one, every other file on the other. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2

test: setup lint browser ## linters, then every test (starts its own PostgreSQL; runs Airflow for real)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# The nightly report is tested in a real browser: Debian's Chromium and its driver,
# installed where missing when we may (root with apt-get); otherwise that test skips
# and says why.
browser: ## install Debian's chromium and chromium-driver if missing (as root)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver for the report's browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; } \
		|| echo "Could not install chromium: the browser test will be skipped"; \
	else echo "No chromium and not root: the browser test will be skipped (apt-get install chromium chromium-driver)"; fi

lint: setup ## ruff (with Airflow rules) and sqlfluff (dbt templater); fails on findings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m include.lint_sql

format: setup ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

warehouse-start: setup ## start the embedded PostgreSQL
	$(BIN)/crm warehouse start

warehouse-stop: ## stop the embedded PostgreSQL
	-$(BIN)/crm warehouse stop

clean: warehouse-stop ## delete the virtualenv and all local data (.crm)
	rm -rf $(VENV) .crm dbt_project/target dbt_project/logs
