"""Real ClickHouse engine (chdb) for the metrics tests: one client per test process, one
database per test."""

from __future__ import annotations

import pytest

from metrics.testing import drop_database, fresh_database, shared_chdb_client


@pytest.fixture(scope="session")
def ch_client(tmp_path_factory):
    return shared_chdb_client(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def metrics_db(ch_client):
    name = fresh_database(ch_client)
    yield name
    drop_database(ch_client, name)
