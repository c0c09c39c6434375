# Two entry points (see README.md): `make demo` and `make test`. Both create/refresh .venv/ first.
# `make ui` opens the MLflow UI on the runs they logged.
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

.PHONY: install demo test bench gpu-check experiments

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: pip takes these exact builds from the machine's local files.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	# The whole chain on generated data (params.yaml: the demo profile): demo_data -> extract_frames ->
	# fc_pretrain -> cache_features -> fusion_search -> evaluate_davis / evaluate_jhmdb / evaluate_vip.
	# A second `make demo` reruns nothing.
	$(BIN)/dvc repro
	$(BIN)/sfc show-metrics data/demo/08_reporting/davis/metrics.json data/demo/08_reporting/jhmdb/metrics.json \
	    data/demo/08_reporting/vip/metrics.json data/demo/08_reporting/fusion_search/best.json

experiments: install   # `dvc exp run -S ...` results side by side: what varied, J&F, PCK, mIoU
	$(BIN)/dvc exp show --only-changed \
	    --drop 'Created|.*best_run.yml|.*fusion_search/best.json.*|.*recall|.*decay|.*PCK_0.[345]|.*accuracy|.*fwavacc'

test: install browser
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python benchmarks/propagation.py

gpu-check: install   # every GPU path in one run (~8 min on one GPU); `sh benchmarks/gpu_check.sh --dry-run` anywhere
	sh benchmarks/gpu_check.sh

# Debian's Chromium, driven by tests/pipelines/test_mlflow_ui.py (that test is skipped without it).
# Installed only as root with apt-get; otherwise this says why and `make test` goes on.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then \
	    echo "browser: /usr/bin/chromium is there"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "browser: no /usr/bin/chromium, and it is installed only as root with apt-get" \
	        "(apt-get install chromium): the MLflow UI browser test will be skipped"; \
	else \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } || \
	        echo "browser: apt-get could not install chromium: the MLflow UI browser test will be skipped"; \
	fi

# The MLflow UI on the project's store (sqlite:///mlflow.db, artifacts under mlruns/), venv activated
# or not. One worker and no GenAI job runner: `kedro mlflow ui` starts 4 workers and 8 job processes
# (~2.7 GB). MLflow 3.17 opens experiments in its GenAI view: pick "Model training" once.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000
.PHONY: ui
ui: install
	@echo "MLflow UI: http://$(UI_HOST):$(UI_PORT) (choose 'Model training' at the top left; Ctrl+C stops it)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db \
	    --host $(UI_HOST) --port $(UI_PORT) --workers 1
