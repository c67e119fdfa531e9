# AgentOS agent-runner (Kafka worker that runs agno agents) image. Build context = repository root:
#
#   docker build -f deploy/agent-runner.Dockerfile -t agentos/agent-runner .
#
# No HTTP port and therefore no HEALTHCHECK: the process exits when it cannot work
# (the orchestrator restarts it), and Kafka consumer-group membership is its liveness.
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
    AGENTOS_DATA_DIR=/data

RUN groupadd --system --gid 10001 agentos \
 && useradd --system --uid 10001 --gid agentos --create-home --home-dir /home/agentos \
        --shell /usr/sbin/nologin agentos \
 && mkdir -p /data \
 && chown agentos:agentos /data

WORKDIR /app
COPY --from=build /app/.venv /app/.venv

USER 10001:10001

CMD ["python", "-m", "agent_runner"]
