# Parity: `make run` serves the whole platform, `make test` runs the suite (embedded defaults).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-dev.lock | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test test-fast lint format bench migrations-check clean

$(STAMP): requirements.lock requirements-dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.lock
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo --url http://$(HOST):$(PORT)
	$(PY) manage.py bootstrap_demo_deployment
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: venv
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy runtimes/core runtimes/providers
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

format: venv
	$(PY) -m ruff format .

bench: venv
	$(PY) -m bench

migrations-check: venv
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var
