# syntax=docker/dockerfile:1
# One image for the status API (the default command), the Prefect worker and every flow
# run of the ECS work pool (deployments/aws/compute.yaml, prefect.yaml). CI lints this file
# (tests/deployments/test_dockerfile.py) but does not build it: no Docker engine there.
#
# The base is pinned by digest. REFRESH IT before building (the digest below was read from
# public sources, not from the registry, and tags move weekly with security fixes):
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# --- build: the environment from the lock, and compiled bytecode ----------------------
FROM ${PYTHON_IMAGE} AS build
# uv's version is the one the project requires (pyproject.toml, Makefile).
ARG UV_VERSION=0.13.8
# Bytecode compiled at build time: every flow run is a new interpreter, and the final image
# cannot write __pycache__ (see docs/design.md, "Latency").
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, from the lock only: this layer is reused until uv.lock changes.
# Runtime dependencies only: no dev (tests, linters) or local (embedded PostgreSQL) group.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-install-project
# The code runs from /app (the flows' entrypoints are paths in it, prefect.yaml).
COPY prefect.yaml ./
COPY image_pipeline ./image_pipeline
COPY tasks ./tasks
COPY flows ./flows
COPY api ./api
COPY deployments ./deployments
# Our own modules too; unchecked hashes, so the copies' timestamps never invalidate them.
RUN /app/.venv/bin/python -m compileall -q --invalidation-mode unchecked-hash \
        image_pipeline tasks flows api deployments

# --- runtime: the environment and the code, no uv, no pip cache, no build files -------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin pipeline
WORKDIR /app
# Owned by root and read-only to the pipeline user: a run cannot change the code.
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMAGE_PIPELINE_HOME=/app \
    PREFECT_HOME=/tmp/prefect
USER 10001:10001
EXPOSE 8000
# The API's liveness; the worker's service sets its own check (deployments/aws/compute.yaml),
# and ECS ignores this one for flow runs, which serve nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "deployments.aws.healthcheck", "http://127.0.0.1:8000/healthz"]
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", \
     "--proxy-headers", "--forwarded-allow-ips", "*"]
