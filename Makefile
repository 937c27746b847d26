# Two commands on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
MINISTACK_VENV := .venv-ministack
STATE := .state
# Each phase prints a line when it starts and one when it ends, with the time it took.
PHASE := $(PYTHON) -m deployments.local.phase
# What running needs (the project, its runtime dependencies and the local stack's
# PostgreSQL); `make test` adds the dev group (pytest, schemathesis, cfn-lint, ...).
# --inexact: `make up` after `make test` keeps the test tools instead of removing them.
SYNC_RUN := $(UV) sync --frozen --inexact --no-default-groups --group local --python $(PYTHON)
SYNC_ALL := $(UV) sync --frozen --python $(PYTHON)
# Ship compiled bytecode: every flow run is a new interpreter, and with
# PYTHONDONTWRITEBYTECODE set (as in many containers and CI images) each one would
# otherwise compile Prefect from source, about 1.9 s of CPU per run. Compiled in a phase of
# its own (uv compiles the whole environment when asked), so that its half minute shows.
export UV_COMPILE_BYTECODE := 0

.PHONY: up down test lint bench soak audit install install-run clean reset

# Everything, test tools included (what `make test` uses).
install: $(VENV)/.synced $(MINISTACK_VENV)/.synced

# What `make up` needs to run.
install-run: $(VENV)/.synced-run $(MINISTACK_VENV)/.synced

$(UV):
	@$(PHASE) "install uv" -- bash -c '$(PYTHON) -m venv $(TOOLS) && \
	  $(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)'

$(VENV)/.synced-run: $(UV) pyproject.toml uv.lock Makefile
	@$(PHASE) "install (runtime)" -- $(SYNC_RUN) --quiet
	@$(PHASE) "compile" -- $(SYNC_RUN) --quiet --compile-bytecode
	touch $@

$(VENV)/.synced: $(UV) pyproject.toml uv.lock Makefile
	@$(PHASE) "install (with test tools)" -- $(SYNC_ALL) --quiet
	@$(PHASE) "compile" -- $(SYNC_ALL) --quiet --compile-bytecode
	touch $@ $(VENV)/.synced-run

# MiniStack pins its own botocore, so it lives in an environment of its own.
$(MINISTACK_VENV)/.synced: $(UV) deployments/local/ministack.lock.txt Makefile
	@$(PHASE) "install MiniStack" -- bash -c '\
	  $(UV) venv --quiet --allow-existing --python $(PYTHON) $(MINISTACK_VENV) && \
	  $(UV) pip sync --quiet --compile-bytecode --python $(MINISTACK_VENV)/bin/python \
	    deployments/local/ministack.lock.txt'
	touch $@

up: install-run
	$(VENV)/bin/python -m deployments.local.up

down: $(VENV)/.synced-run
	$(VENV)/bin/python -m deployments.local.down

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

# Benchmarks are not tests: they write BENCHMARKS.md. Run them on a quiet machine.
bench: install
	$(VENV)/bin/python -m benchmarks.bench_image_work --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_image_work --media --runs 25 --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_image_memory --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_local_labels --output BENCHMARKS.md
	$(VENV)/bin/python -m benchmarks.bench_batch_designs
	$(VENV)/bin/python -m benchmarks.bench_stack
	$(VENV)/bin/python -m benchmarks.bench_task_runs

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

# Every piece of local state (the README lists them): the stack's data, keys, logs and
# PostgreSQL database, wherever it lives. Refuses while `make up` runs.
reset:
	@$(PYTHON) -m deployments.local.reset $(STATE)

# reset, and the installed environments and caches too.
clean: reset
	rm -rf $(VENV) $(MINISTACK_VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis
