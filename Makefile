# Two commands matter (see README): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.installed-e2e

.PHONY: demo test lint test-postgres test-e2e test-clocks faults venv clean bench

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

## Set everything up (virtualenv, dependencies, migrations, demo workspace, sandbox) and run
## web + Celery worker + Celery beat + the provider sandbox. Ctrl-C stops them all.
demo: $(STAMP)
	$(PY) -m doow.demo $(DEMO_ARGS)

## Run the test suite (SQLite by default; set DATABASE_URL / CELERY_BROKER_URL to use others).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Lint and types: ruff's rules and its formatter's check, then mypy with django-stubs
## (settings in pyproject.toml). CI runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test-postgres: $(STAMP)
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test CELERY_BROKER_URL=redis://127.0.0.1:6379/15 $(PY) -m pytest $(PYTEST_ARGS)

## Only the faults-and-attacks suite (faults/, also part of `make test`), with its figures; ~1 min.
faults: $(STAMP)
	$(PY) -m pytest faults $(PYTEST_ARGS)

## The suite at 10 pinned instants (month ends, DST changes, 00:30 and 23:30 UTC); ~15 min.
test-clocks: $(STAMP)
	PY=$(PY) bash .ci/clocks $(PYTEST_ARGS)

$(E2E_STAMP): $(STAMP) requirements-e2e.txt
	$(PY) -m pip install --quiet -r requirements-e2e.txt
	@touch $(E2E_STAMP)

## The real-browser end-to-end tests (e2e/): headless Debian Chromium (/usr/bin/chromium, from
## `apt-get install chromium`) driven by Playwright. They skip when either is missing, except
## with CI=true, where that fails.
test-e2e: $(E2E_STAMP)
	$(PY) -m pytest e2e -m browser $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf var .pytest_cache
