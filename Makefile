# capif8sec: the two commands of the README quick start.
#   make demo   -- the main job: the CAPIF-8 exchange end to end on loopback (capif8sec demo)
#   make test   -- ruff, mypy --strict, the docs build and pytest
# Each creates its own virtual environment (.venv, or $(VENV)) when missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.capif8sec-installed

.PHONY: demo test lint typecheck docs pytest clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/capif8sec demo

test: lint typecheck docs pytest

lint: $(STAMP)
	$(BIN)/ruff check capif8sec tests bench examples
	$(BIN)/ruff format --check capif8sec tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -b html docs $(VENV)/docs-html
	$(BIN)/sphinx-build -q -W --keep-going -b doctest docs $(VENV)/docs-doctest

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-* build *.egg-info .pytest_cache .mypy_cache .ruff_cache
