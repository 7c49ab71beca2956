# The two commands a new user types: `make run` and `make test`. Everything else is set up here.
SHELL := /bin/bash
# Python 3.12, found by deploy/python.sh (pyenv's beside the default 3.11 on these machines).
PYTHON ?= $(shell deploy/python.sh)
VENV := .venv
STAMP := $(VENV)/.installed
DASHBOARD_ASSETS := services/api/dashboard/node_modules/.installed

.PHONY: run test lint format bench drill kafka-up kafka-down pg-up pg-down clean dashboard

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo 'make: no Python 3.12 (see deploy/python.sh)' >&2; exit 1; }
	$(VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
	  || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The dashboard's chart library, from the npm registry at the version its lockfile pins, into a
# git-ignored node_modules that the query API serves: nothing is fetched from a CDN at run time.
$(DASHBOARD_ASSETS): services/api/dashboard/package.json services/api/dashboard/package-lock.json
	npm ci --prefix services/api/dashboard --no-audit --no-fund --loglevel=error
	touch $(DASHBOARD_ASSETS)

dashboard: $(DASHBOARD_ASSETS)

run: $(STAMP) $(DASHBOARD_ASSETS)
	deploy/run.sh

test: $(STAMP) $(DASHBOARD_ASSETS)
	deploy/test.sh $(PYTEST_ARGS)

bench: $(STAMP)
	deploy/bench.sh $(BENCH_ARGS)

drill: $(STAMP)
	CLUSTER="$(CLUSTER)" deploy/drill.sh $(DRILL_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services tests bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

kafka-up: $(STAMP)
	PYTHON=$(VENV)/bin/python deploy/kafka/kafka.sh start

kafka-down:
	deploy/kafka/kafka.sh stop

pg-up:
	deploy/postgres/postgres.sh start

pg-down:
	deploy/postgres/postgres.sh stop

clean: kafka-down pg-down
	rm -rf var
