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

# Every benchmark at a modest size (~10 min on 2 idle cores); each prints its ratio against Segment's
# own implementation (benchmarks/oracle.py, in the same run) where one applies, or says why not.
# By hand, never part of the tests: the sizes are arguments (see each script's docstring).
bench: $(STAMP)  ## throughput and memory figures, with ratios against Segment's implementation
	$(BIN)/python benchmarks/bench_day.py --events 1000000
	$(BIN)/python benchmarks/bench_raw_events.py --events 200000
	$(BIN)/python benchmarks/bench_actions.py --events 100000 --workers 2
	$(BIN)/python benchmarks/bench_signals.py --signals 50000 --concurrency 1 4
	$(BIN)/python benchmarks/bench_delivery.py --events 200000
	@echo "bench_delivery: no ratio against Segment: its Acoustic destination delivers from Segment's own servers; there is no local implementation to run"
	$(BIN)/python benchmarks/bench_exports.py --mb 50 --rows 500000 --repeats 1
	@echo "bench_exports: no ratio against Segment: exportSignals (Connect -> SFTP -> Parquet) is Acoustic's, Segment has no counterpart"
	$(BIN)/python benchmarks/bench_connections.py --rows 200000
	@echo "bench_connections: no ratio against Segment: Segment Connections runs on Segment's servers; no published implementation to run in the same run"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf lake sample-archive .dagster .sandbox
