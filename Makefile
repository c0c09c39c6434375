# Two entry points (see README.md): `make demo` and `make test`. Both create/refresh .venv/ first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Offline by design: no telemetry from Kedro, MLflow or DVC.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: install demo test bench clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: pip takes these exact builds from the machine's local files.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/sfc demo-data data/01_raw/demo_davis
	$(BIN)/sfc demo-data --kind jhmdb data/01_raw/demo_jhmdb
	$(BIN)/sfc demo-data --kind vip data/01_raw/demo_vip
	$(BIN)/kedro run --env demo --pipelines extract_frames,fc_pretrain
	$(BIN)/kedro run --env demo --pipelines evaluate_davis
	$(BIN)/kedro run --env demo --pipelines evaluate_jhmdb,evaluate_vip
	$(BIN)/sfc show-metrics data/08_reporting/davis/metrics.json data/08_reporting/jhmdb/metrics.json \
	    data/08_reporting/vip/metrics.json

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python benchmarks/propagation.py
