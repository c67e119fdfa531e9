"""Gateway settings: environment variables only (prefix ``GATEWAY_``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings, data_dir

_PACKAGE_DIR = Path(__file__).parent


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    keep_alive_s: int = 75
    access_log: bool = True
    # Empty = SQLite file under AGENTOS_DATA_DIR. Postgres: postgresql+asyncpg://user@host/db
    # (postgresql://... is normalised to asyncpg).
    database_url: str = ""
    metrics_url: str = Field("http://127.0.0.1:8001", description="Base URL of the metrics service's query API.")

    # Demo data (make run): a demo user + API key and the agents of the definitions file.
    seed_demo: bool = False
    agents_file: Path = _PACKAGE_DIR / "seed" / "demo_agents.json"
    demo_api_key: str | None = Field(None, validation_alias=AliasChoices("AGENTOS_DEMO_API_KEY", "GATEWAY_DEMO_API_KEY"))
    admin_api_key: str | None = Field(None, validation_alias=AliasChoices("AGENTOS_ADMIN_API_KEY", "GATEWAY_ADMIN_API_KEY"))

    # Answer modes and limits.
    wait_timeout_s: float = Field(60.0, gt=0, description="How long send-message waits for the run before 504.")
    publish_timeout_s: float = Field(5.0, gt=0, description="Kafka unreachable for this long -> 503.")
    wait_poll_interval_s: float = Field(
        5.0, gt=0, description="A waiting request re-reads its run at least this often (a safety net: it is woken "
                               "when any replica projects the run).")
    max_body_bytes: int = 256 * 1024
    max_message_chars: int = 32_000
    max_title_chars: int = 200
    max_context_bytes: int = 16 * 1024
    page_size: int = 20
    access_cache_ttl_s: float = Field(30.0, ge=0, description="How stale another replica's permission cache may be.")
    max_page: int = 10_000

    webhook_callback_allowed_hosts: str = Field("", description="Comma separated; empty = any host (set it in production).")
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per user per minute (token bucket).")
    max_concurrent_runs: int = Field(64, ge=1, description="Queued + running runs per user.")

    @property
    def callback_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_callback_allowed_hosts.split(",") if h.strip())

    @cached_property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings()

    def async_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{data_dir() / 'gateway.sqlite'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+asyncpg://" + url[len(prefix):]
        return url
