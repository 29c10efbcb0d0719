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

$(DAGSTER_HOME):
	mkdir -p $(DAGSTER_HOME)

$(DAGSTER_HOME)/dagster.yaml: | $(DAGSTER_HOME)
	cp config/dagster.yaml $@

demo: $(STAMP) | $(DAGSTER_HOME)/dagster.yaml  ## set up, then run the daily pipeline on a sample day
	$(BIN)/acoustic-pipelines demo

test: $(STAMP)  ## set up, then run the whole test suite
	$(BIN)/python -m pytest

dev: $(STAMP) | $(DAGSTER_HOME)/dagster.yaml  ## open the Dagster UI on this code location
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
