# Every target installs what it needs into .venv first (idempotent), so each is one command
# on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help run test test-unit lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)  ## the main job: embedded broker + worker + generated events -> decisions
	$(BIN)/python -m scripts.run $(ARGS)

test: $(STAMP)  ## the whole test suite (unit, doctests, real-broker integration)
	$(BIN)/pytest $(ARGS)

test-unit: $(STAMP)  ## only the tests that need no broker
	$(BIN)/pytest -m "not broker" $(ARGS)

lint: $(STAMP)  ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## benchmark: pure step events/s and end-to-end throughput/latency
	$(BIN)/python -m scripts.bench $(ARGS)

clean:  ## remove local state, logs and the virtualenv
	rm -rf $(VENV) .state .run artifacts
