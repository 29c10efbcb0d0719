# Set-up is part of every target: the virtualenv is (re)built only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: demo test dev bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## set up, then run the daily pipeline on a sample day (it initialises DAGSTER_HOME)
	$(BIN)/acoustic-pipelines demo

test: $(STAMP)  ## set up, then run the whole test suite
	$(BIN)/python -m pytest

# `instance init` installs config/dagster.yaml into DAGSTER_HOME (if it has none) and creates the
# instance's storage once, under a lock: several processes opening a brand-new home at once race.
dev: $(STAMP)  ## open the Dagster UI on this code location
	$(BIN)/acoustic-pipelines instance init
	$(BIN)/acoustic-pipelines sandbox -- $(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)  ## throughput and memory figures (by hand, not part of the tests)
	$(BIN)/python benchmarks/bench_raw_events.py
	$(BIN)/python benchmarks/bench_actions.py
	$(BIN)/python benchmarks/bench_delivery.py
	$(BIN)/python benchmarks/bench_exports.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf lake sample-archive .dagster .sandbox
