# pricecast — `make run` and `make test` are all a fresh machine needs (Python 3.11 + the package index).
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export TF_CPP_MIN_LOG_LEVEL ?= 3

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "uv==$(UV_VERSION)"

# --compile-bytecode: .pyc files at install, as pip makes them. Without them every new process (the CLI, Dask
# workers, test subprocesses) compiles prefect, pandas and scipy from source where PYTHONDONTWRITEBYTECODE is set.
$(VENV)/.run-installed: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --frozen --inexact --no-dev --compile-bytecode --python $(BIN)/python
	@touch $@

$(VENV)/.dev-installed: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --frozen --inexact --compile-bytecode --python $(BIN)/python
	@touch $@ $(VENV)/.run-installed

install: $(VENV)/.run-installed ## Create .venv and install pricecast (runtime dependencies only)

dev: $(VENV)/.dev-installed ## Install the development dependencies too

run: install ## Backtest every model family on the bundled sample; prints the leaderboard and report path
	$(BIN)/pricecast backtest

test: dev ## Run every test (lint, import layering, types over every package, unit, integration)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

lint: dev ## ruff lint + format check, import-linter contracts, mypy over every package (no tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: dev ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: dev ## Run every benchmark (about 55 minutes on 2 cores); results land in benchmarks/results/
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_neural.py
	$(BIN)/python benchmarks/bench_backtest.py --part all
	$(BIN)/python benchmarks/bench_flow.py
	$(BIN)/python benchmarks/bench_event.py
	$(BIN)/python benchmarks/bench_global.py  # + --peer-python <env with neuralforecast> for the anchor

clean: ## Remove the environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis .prefect

.PHONY: help install dev run test lint format bench clean
