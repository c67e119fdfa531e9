"""Which real backends the tests use, decided once:

* Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else a Kafka container when a Docker daemon
  answers (testcontainers); else the in-memory wire-protocol broker (librdkafka mock cluster).
* Postgres: ``AGENTOS_TEST_POSTGRES_URL`` (a server we may create databases on) if set; else a
  container when Docker answers; else the local server at 127.0.0.1:5432.
* ClickHouse: ``CLICKHOUSE_URL`` if set (used by the metrics service); else embedded chdb.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator


def docker_available() -> bool:
    if os.environ.get("AGENTOS_TEST_NO_DOCKER"):
        return False
    try:
        import docker  # testcontainers' dependency

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[tuple[str, object | None]]:
    """Yields (bootstrap servers, dev broker or None). The dev broker object allows fault
    injection (broker down/up) in tests that need it."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"], None
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server(), None
        return
    from shared.kafka.devbroker import DevKafkaBroker

    with DevKafkaBroker() as broker:
        yield broker.bootstrap_servers, broker


@contextlib.contextmanager
def postgres_server_url() -> Iterator[str]:
    """A libpq URL of a Postgres server whose ``postgres`` database we may create databases in."""
    if os.environ.get("AGENTOS_TEST_POSTGRES_URL"):
        yield os.environ["AGENTOS_TEST_POSTGRES_URL"]
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    yield "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database for one test session and drop it afterwards."""
    import psycopg

    name = f"agentos_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
