# Strongroom — two commands: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_DATA := var/dev

.PHONY: run test lint typecheck pytest bench bench-quick fuzz demo audit clean browser-deps

$(STAMP): pyproject.toml scripts/bootstrap.sh
	@bash scripts/bootstrap.sh $(VENV)
	@touch $(STAMP)

## make run: set up (first time only), initialise a dev box under var/dev and start it.
run: $(STAMP)
	@$(BIN)/strongroom dev --data $(DEV_DATA)

## make test: set up, then ruff, mypy and the whole pytest suite (browser tests included).
test: $(STAMP) browser-deps lint typecheck pytest

browser-deps:
	@bash scripts/ensure-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check app firmware tests scripts
	$(BIN)/ruff format --check app firmware tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## The suite on two pytest-xdist workers, a module per unit of work, longest
## first (tests/conftest.py); TEST_WORKERS=1 runs it in one process, as `.venv/bin/pytest` does.
TEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

## make bench: every benchmark, one table in docs/benchmarks.md (~8-15 minutes on 2 cores once
## the 1M and 5M corpora are cached under var/bench; the first run also builds them, ~230 s of
## two free cores, and installs Synapse beside them: 23 min measured on a shared machine).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --write docs/benchmarks.md

bench-quick: $(STAMP)
	$(BIN)/python scripts/bench.py --quick

## make fuzz: bounded-time fuzzer over every parser that reads outside input.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --seconds $(FUZZ_SECONDS)

demo: $(STAMP)
	@bash scripts/demo.sh

## make audit: pip-audit against the pinned set (needs the vulnerability feed; not part of make test).
audit: $(STAMP)
	$(BIN)/pip install -q pip-audit
	$(BIN)/pip-audit --skip-editable

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/artifacts
