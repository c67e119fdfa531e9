"""ClickHouse client factory: embedded chdb by default, a server when ``CLICKHOUSE_URL`` is set.

Both give the same clickhouse-connect ``Client`` API, so nothing else in the service knows
which one it talks to. Facts that shape the callers (see docs/platform-notes.md):

- One process at a time may open a chdb directory, and a process can open only one path:
  this service is the only opener; analysts go through ``POST /v1/sql``.
- The client is synchronous (a chdb handle serializes calls behind a lock): async code calls
  it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from metrics.settings import MetricsSettings
from shared.settings import data_dir

__all__ = ["ClickHouseTarget", "Client", "connect", "resolve_target"]


@dataclass(frozen=True)
class ClickHouseTarget:
    database: str
    chdb_path: Path | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str = ""
    secure: bool = False

    @property
    def embedded(self) -> bool:
        return self.chdb_path is not None

    def describe(self) -> str:
        """For logs: never includes the password."""
        if self.embedded:
            return f"chdb://{self.chdb_path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port}/{self.database}"


def resolve_target(settings: MetricsSettings) -> ClickHouseTarget:
    if not settings.clickhouse_url:
        path = (settings.chdb_path or data_dir() / "clickhouse").expanduser().resolve()
        return ClickHouseTarget(database=settings.clickhouse_database, chdb_path=path)

    url = urlsplit(settings.clickhouse_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("CLICKHOUSE_URL must look like http(s)://user:pass@host:8123/database")
    secure = url.scheme == "https"
    database = url.path.strip("/") or settings.clickhouse_database
    return ClickHouseTarget(
        database=database,
        host=url.hostname,
        port=url.port or (8443 if secure else 8123),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else "",
        secure=secure,
    )


def connect(target: ClickHouseTarget) -> Client:
    """Open a client. The database is not selected here: it may not exist before migrations,
    and every statement of this service names its tables fully."""
    if target.embedded:
        assert target.chdb_path is not None
        target.chdb_path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{target.chdb_path}")
    return clickhouse_connect.get_client(
        host=target.host,
        port=target.port,
        username=target.username,
        password=target.password,
        secure=target.secure,
    )
