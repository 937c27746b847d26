# Two commands on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
MINISTACK_VENV := .venv-ministack

.PHONY: up down test lint bench install clean

install: $(VENV)/.synced $(MINISTACK_VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# MiniStack pins its own botocore, so it lives in an environment of its own.
$(MINISTACK_VENV)/.synced: $(UV) deployments/local/ministack.lock.txt
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(MINISTACK_VENV)
	$(UV) pip sync --quiet --python $(MINISTACK_VENV)/bin/python deployments/local/ministack.lock.txt
	touch $@

up: install
	$(VENV)/bin/python -m deployments.local.up

down: $(VENV)/.synced
	$(VENV)/bin/python -m deployments.local.down

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(MINISTACK_VENV) $(TOOLS) .pytest_cache .ruff_cache
