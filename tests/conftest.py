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
