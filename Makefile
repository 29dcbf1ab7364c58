# The two commands the README starts with, and the maintainers' tasks.
#   make demo    a project virtualenv with the device extra (no TensorFlow), then the live demo
#   make test    test tools (Mosquitto, systemd, filesystem tools) if missing, the dev extra, pytest
# Each creates and reuses .venv itself; an extra is installed again only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK ?= 1

.PHONY: demo test lint models schema system-packages

demo: $(VENV)/.installed-demo
	$(VPY) -m edge_agent.cli demo

test: system-packages $(VENV)/.installed-dev
	$(VPY) -m pytest

lint: $(VENV)/.installed-dev
	$(VPY) -m ruff check . && $(VPY) -m ruff format --check .

models: $(VENV)/.installed-dev
	$(VPY) -m training.cli train training/configs/vibration_fault.toml
	$(VPY) -m training.cli train training/configs/vibration_anomaly.toml
	$(VPY) -m training.cli train training/configs/cmapss_fd001_rul.toml

schema: $(VENV)/.installed-dev
	$(VPY) -m edge_agent.manifest > docs/schemas/manifest.schema.json
	$(VPY) -m edge_agent.mqtt.contract docs/schemas

# Stock Debian ships venv without ensurepip: install python3-venv when root, else say how.
$(VPY):
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "make: $(PYTHON) cannot create a virtualenv: sudo apt-get install python3-venv" >&2; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[$*]'
	@touch $@

# Debian packages the tests use: a real broker, systemd-analyze, mkfs.ext4, losetup, and Node.js
# for the Node-RED example's function (tool:package).
system-packages:
	@missing=""; \
	for tool in mosquitto:mosquitto systemd-analyze:systemd mkfs.ext4:e2fsprogs losetup:util-linux node:nodejs; do \
	  command -v $${tool%%:*} >/dev/null || [ -x /usr/sbin/$${tool%%:*} ] || missing="$$missing $${tool##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; \
	  else echo "make test needs these Debian packages:$$missing; install them with: sudo apt-get install$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
