"""agent-runner settings: environment variables only (prefix ``RUNNER_``; provider keys by
their usual names)."""

from __future__ import annotations

from functools import cached_property

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings, data_dir


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNNER_", extra="ignore")

    # Conversation memory (agno's db). Empty = SQLite file under AGENTOS_DATA_DIR.
    # Postgres: postgresql+psycopg_async://user@host/db (or postgresql://..., normalised).
    db_url: str = ""
    history_runs: int = Field(20, ge=0, description="Earlier runs of a session put in the model's context.")
    max_in_flight: int = Field(256, ge=1, description="Runs executing at once in this process.")
    run_deadline_s: float = Field(120.0, gt=0)
    max_tool_calls: int = Field(8, ge=0, description="Cap on tool calls per run (agno's loop has none).")
    transient_retries: int = Field(2, ge=0, description="Retries of a retryable provider error.")
    retry_backoff_s: float = Field(0.2, ge=0)
    http_fetch_allowed_hosts: str = Field("", description="Comma separated hosts the http_fetch tool may call.")

    scripted_latency_ms: float = Field(0.0, ge=0, validation_alias=AliasChoices("AGENTOS_SCRIPTED_LATENCY_MS", "RUNNER_SCRIPTED_LATENCY_MS"))

    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    ollama_host: str = Field("http://127.0.0.1:11434", validation_alias="OLLAMA_HOST")
    openai_compatible_base_url: str | None = Field(None, validation_alias="OPENAI_COMPATIBLE_BASE_URL")
    openai_compatible_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_COMPATIBLE_API_KEY")

    @field_validator("openai_api_key", "anthropic_api_key", "openai_compatible_api_key", "openai_compatible_base_url",
                     "scripted_latency_ms", mode="before")
    @classmethod
    def _empty_is_unset(cls, value, info):
        # `OPENAI_API_KEY=` (empty) must count as missing, not as a key: the run should fail
        # with "OPENAI_API_KEY is not set" rather than with a provider's 401.
        if isinstance(value, str) and not value.strip():
            return 0.0 if info.field_name == "scripted_latency_ms" else None
        return value

    @cached_property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings()

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.http_fetch_allowed_hosts.split(",") if h.strip())

    def agno_db_url(self) -> str:
        if self.db_url:
            url = self.db_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg_async://" + url.split("://", 1)[1]
            return url
        return f"sqlite+aiosqlite:///{data_dir() / 'runner.sqlite'}"
