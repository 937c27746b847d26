# Two commands on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
MINISTACK_VENV := .venv-ministack
# Ship compiled bytecode: every flow run is a new interpreter, and with
# PYTHONDONTWRITEBYTECODE set (as in many containers and CI images) each one would
# otherwise compile Prefect from source, about 1.9 s of CPU per run.
export UV_COMPILE_BYTECODE := 1

.PHONY: up down test lint bench soak audit install clean

install: $(VENV)/.synced $(MINISTACK_VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# MiniStack pins its own botocore, so it lives in an environment of its own.
$(MINISTACK_VENV)/.synced: $(UV) deployments/local/ministack.lock.txt Makefile
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

# Benchmarks are not tests: they write BENCHMARKS.md. Run them on a quiet machine.
bench: install
	$(VENV)/bin/python -m benchmarks.bench_image_work --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_image_memory --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_local_labels --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_batch_designs
	$(VENV)/bin/python -m benchmarks.bench_stack

soak: install
	$(VENV)/bin/python -m benchmarks.bench_stack --soak 500

# Known-vulnerability audit of the lock file with pip-audit, offline: against a loopback
# OSV API serving a dated snapshot of the PyPI advisory database (see README). ONLINE=1
# asks api.osv.dev instead, where the network allows.
ADVISORIES ?= ../shared/advisories/pypi-osv.zip
audit: install
	$(UV) export --frozen --format requirements-txt --no-hashes --no-emit-project -o .audit-requirements.txt -q
	$(VENV)/bin/python -m deployments.local.audit $(if $(ONLINE),--online,--zip $(ADVISORIES)) .audit-requirements.txt

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(MINISTACK_VENV) $(TOOLS) .pytest_cache .ruff_cache
