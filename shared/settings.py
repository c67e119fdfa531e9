"""Reusable settings blocks. Each service composes them into its own pydantic-settings class.

Only environment variables configure the services (12-factor): the embedded default and a
production deployment differ only in these values.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """``KAFKA_BOOTSTRAP_SERVERS`` = comma separated host:port list (a real Kafka or the
    embedded development broker started by ``python -m shared.kafka.devbroker``)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    client_id_prefix: str = "agentos"
    # Empty fetches are held this long by the broker: keep it small or every hop costs 500 ms.
    fetch_max_wait_ms: int = 10
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    request_timeout_ms: int = 10_000

    @property
    def servers(self) -> list[str]:
        # FastStream does not split on commas: always hand it a list.
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]


def data_dir() -> Path:
    """The embedded default keeps every file under one folder (``AGENTOS_DATA_DIR``)."""

    class _D(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="AGENTOS_", extra="ignore")
        data_dir: Path = Path(".data")

    path = _D().data_dir.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
