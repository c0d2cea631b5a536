# capif8sec: the two commands of the README quick start.
#   make demo   -- the main job: the CAPIF-8 exchange end to end on loopback (capif8sec demo)
#   make test   -- ruff, mypy --strict, the docs build and pytest
# Each creates its own virtual environment (.venv, or $(VENV)) when missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.capif8sec-installed

.PHONY: demo test lint typecheck docs pytest clean bench fuzz

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/capif8sec demo

test: lint typecheck docs pytest

lint: $(STAMP)
	$(BIN)/ruff check capif8sec tests bench examples fuzz
	$(BIN)/ruff format --check capif8sec tests bench examples fuzz

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

# The long fuzz run (docs/security.md, "Fuzzing"): each atheris target for FUZZ_SECONDS, corpus
# kept in .fuzz/corpus/TARGET (crash files in .fuzz/artifacts/).  The short run is in make test.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	@mkdir -p .fuzz/artifacts
	@for t in certs scram; do echo "== fuzz/fuzz_$$t.py for $(FUZZ_SECONDS)s"; \
	  $(BIN)/python fuzz/fuzz_$$t.py .fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -timeout=30 -rss_limit_mb=4096 \
	    -artifact_prefix=.fuzz/artifacts/$$t- || exit 1; done

clean:
	rm -rf $(VENV) .venv-* .fuzz build *.egg-info .pytest_cache .mypy_cache .ruff_cache
