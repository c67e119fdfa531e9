"""One conftest that picks the real backends (see ``tests/backends.py``)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("AGNO_TELEMETRY", "false")

from tests import backends  # noqa: E402


@pytest.fixture(scope="session")
def kafka():
    """(bootstrap servers, dev broker or None) shared by the in-process integration tests."""
    with backends.kafka_bootstrap() as pair:
        yield pair


@pytest.fixture(scope="session")
def postgres_server():
    with backends.postgres_server_url() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_server):
    with backends.fresh_postgres_database(postgres_server) as url:
        yield url


# Real ClickHouse engine (chdb) for the metrics tests: one client per test process (chdb can
# open one path per process), one database per test. Imported lazily: chdb costs ~0.5 s.
@pytest.fixture(scope="session")
def ch_client(tmp_path_factory):
    from metrics.testing import shared_chdb_client

    return shared_chdb_client(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def metrics_db(ch_client):
    from metrics.testing import drop_database, fresh_database

    name = fresh_database(ch_client)
    yield name
    drop_database(ch_client, name)
