# AgentOS gateway (FastAPI) image. Build context = repository root:
#
#   docker build -f deploy/gateway.Dockerfile -t agentos/gateway .
#
# The image also carries deploy/create_topics.py: the topic-creation job (compose
# `kafka-init`, k8s Job `agentos-kafka-topics`) runs it with
# `python deploy/create_topics.py`.
#
# Same two stages in all three service Dockerfiles: `build` resolves uv.lock into
# /app/.venv (dependencies first for layer caching, then the project itself as a regular,
# non-editable wheel); `runtime` copies only that venv onto a clean python:3.11-slim and
# runs as a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# 1) Third-party dependencies only: this layer is rebuilt when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# 2) The project (shared + the three service packages, one wheel), non-editable.
COPY shared ./shared
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGNO_TELEMETRY=false \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    AGENTOS_DATA_DIR=/data \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000

RUN groupadd --system --gid 10001 agentos \
 && useradd --system --uid 10001 --gid agentos --create-home --home-dir /home/agentos \
        --shell /usr/sbin/nologin agentos \
 && mkdir -p /data \
 && chown agentos:agentos /data

WORKDIR /app
# Owned by root and read-only for the service user: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv
COPY deploy/create_topics.py /app/deploy/create_topics.py

USER 10001:10001
EXPOSE 8000

# The slim image has no curl: probe with the interpreter that is there anyway.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "gateway"]
