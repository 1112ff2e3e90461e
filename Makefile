# Two commands: `make run` and `make test` (see README.md). Everything else is set-up.
.PHONY: run test lint bench seed check-system clean

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# Find a Python >= 3.12: $PYTHON if set, then the usual names, then pyenv's versions.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$c; break; }; done)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: Pictor Billing needs Python 3.12 or newer, and none was found." >&2; \
	  echo "       Install one (e.g. 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12 ...'." >&2; \
	  exit 1; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[dev]'
	@touch $(STAMP)

check-system: $(STAMP)
	@$(PY) -m pictor_billing.system_check

seed: check-system
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py seed_demo

# The web server, one task worker and the scheduler, started together and stopped together (Ctrl-C).
# DEBUG=true: plain HTTP on this machine (with DEBUG off, settings.py redirects to HTTPS).
run: export DEBUG ?= true
run: seed
	@trap 'kill $$worker $$scheduler 2>/dev/null; wait' EXIT INT TERM; \
	$(PY) manage.py db_worker --no-reload & worker=$$!; \
	$(PY) manage.py billing_scheduler & scheduler=$$!; \
	echo "task worker (pid $$worker) and billing scheduler (pid $$scheduler) started beside the web server"; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# Lint first: a layer violation or a lint error fails `make test` (and CI) before any test runs.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

test: check-system lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Every benchmark, then bench/report.py's one table of all their figures (bench/results/latest.json),
# printed even when a benchmark fails or misses its goal; the target then fails.
BENCHMARKS := run usage purchases renewals stripe_path pdf finance
bench: check-system
	@status=0; for name in $(BENCHMARKS); do $(PY) bench/$$name.py || status=1; done; \
	$(PY) bench/report.py || status=1; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
