# AgentOS — everyday commands. `make run` and `make test` install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# Use uv from PATH if present, else a private copy (pip-installed into .tools/).
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PY := .venv/bin/python
export AGNO_TELEMETRY ?= false

.PHONY: help install run test test-fast bench up down lint clean docs

help: ## Show the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3
	@touch $@

install: .venv/.installed ## Install the pinned dependencies (uv.lock) into .venv

run: install ## Run the whole system on its embedded default (Kafka dev broker, SQLite, chdb)
	$(PY) -m shared.devstack

test: install ## Run the test suite (real Kafka wire protocol, ClickHouse engine, Postgres and SQLite)
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install ## Unit and contract tests only
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/contract

bench: install ## Benchmarks: print tables with baselines measured in the same run
	$(PY) -m tests.bench $(ARGS)

up: ## Production-like stack with Docker (Kafka KRaft, Postgres, ClickHouse server)
	docker compose up --build -d

down: ## Stop the Docker stack
	docker compose down

lint: install ## Static checks
	$(UV) run --frozen ruff check .

docs: install ## Write the AsyncAPI (events) and OpenAPI (gateway) documents to docs/
	mkdir -p docs
	$(PY) -m shared.asyncapi > docs/asyncapi.json
	$(PY) -c "import json; from gateway.main import create_app; print(json.dumps(create_app().openapi(), indent=2))" > docs/openapi.json

clean: ## Remove local data and caches
	rm -rf .data .pytest_cache
