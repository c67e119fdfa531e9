# AgentOS metrics (Kafka -> ClickHouse consumer + query API) image. Build context = repository root:
#
#   docker build -f deploy/metrics.Dockerfile -t agentos/metrics .
#
# Point CLICKHOUSE_URL at a ClickHouse server in production; without it the service uses
# embedded chdb under $AGENTOS_DATA_DIR (/data), which then must be a persistent volume.
# Stages: see deploy/gateway.Dockerfile.

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

COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

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
    METRICS_HTTP_HOST=0.0.0.0 \
    METRICS_HTTP_PORT=8001

RUN groupadd --system --gid 10001 agentos \
 && useradd --system --uid 10001 --gid agentos --create-home --home-dir /home/agentos \
        --shell /usr/sbin/nologin agentos \
 && mkdir -p /data \
 && chown agentos:agentos /data

WORKDIR /app
COPY --from=build /app/.venv /app/.venv

USER 10001:10001
EXPOSE 8001

# /healthz answers 200 once ClickHouse is reachable and the migrations ran (503 before).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('METRICS_HTTP_PORT', '8001'), timeout=4)"]

CMD ["python", "-m", "metrics"]
