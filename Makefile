# rtim — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast test-slow lint typecheck schemas-check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job: embedded broker + topics + worker + simulator, live progress, summary at the end.
run: install
	$(BIN)/rtim dev $(ARGS)

## Everything CI runs: lint, types, schema compatibility, unit + integration + short e2e tests.
test: install lint typecheck schemas-check
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## Long reliability runs (chaos, soak).
test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check rtim tests
	$(BIN)/ruff format --check rtim tests

typecheck: install
	$(BIN)/mypy

schemas-check: install
	$(BIN)/rtim schemas check

bench: install
	$(BIN)/rtim bench $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
