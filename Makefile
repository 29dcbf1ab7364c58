# Common tasks. `make models` reproduces the three committed reference bundles from scratch.
PYTHON ?= python3
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test lint models schema

install:
	$(PYTHON) -m pip install -e '.[dev]'

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .

models:
	$(PYTHON) -m training.cli train training/configs/vibration_fault.toml
	$(PYTHON) -m training.cli train training/configs/vibration_anomaly.toml
	$(PYTHON) -m training.cli train training/configs/cmapss_fd001_rul.toml

schema:
	$(PYTHON) -m edge_agent.manifest > docs/schemas/manifest.schema.json
