"""Configuration of the metrics service: environment variables only (prefix ``METRICS_``).

Kafka connection settings come from the shared ``KAFKA_*`` block. ClickHouse is embedded
(chdb, under ``<AGENTOS_DATA_DIR>/clickhouse``) unless ``CLICKHOUSE_URL`` points at a server.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings
from shared.topics import ConsumerGroup

#: Kafka keeps messages for 7 days by default. A raw row must outlive every possible
#: redelivery of its event, or the redelivered copy would pass the duplicate check.
MIN_RAW_RETENTION_DAYS = 8


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_", extra="ignore", populate_by_name=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="`KAFKA_*` variables.")

    # -- HTTP ---------------------------------------------------------------------------------
    http_host: str = Field(
        "127.0.0.1",
        description="The query API trusts its caller (the gateway authorizes): keep it private.",
    )
    http_port: int = Field(8001, ge=0, le=65535)
    log_level: str = "INFO"

    # -- ClickHouse -----------------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        None,
        validation_alias=AliasChoices("METRICS_CLICKHOUSE_URL", "CLICKHOUSE_URL"),
        description="`http(s)://user:pass@host:8123/db` of a ClickHouse server; unset = embedded chdb.",
    )
    chdb_path: Path | None = Field(
        None, description="Embedded ClickHouse directory; default `<AGENTOS_DATA_DIR>/clickhouse`."
    )
    clickhouse_database: str = Field(
        "agentos_metrics",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Database holding every metrics table (a database path in CLICKHOUSE_URL wins).",
    )

    # -- Consumption ----------------------------------------------------------------------------
    consumer_group: str = Field(str(ConsumerGroup.METRICS), description="Kafka consumer group.")
    batch_max_records: int = Field(5000, ge=1, le=100_000, description="Flush after this many records.")
    batch_max_wait_ms: int = Field(
        200, ge=1, le=60_000, description="Flush this long after the first record of a batch arrived."
    )
    retry_initial_backoff_ms: int = Field(100, ge=1, description="First wait after a failed insert.")
    retry_max_backoff_ms: int = Field(5000, ge=1, description="Longest wait between insert attempts.")
    fault_file: str | None = Field(
        None, description="Resilience testing only: while this file exists every ClickHouse insert fails."
    )
    store_message_content: bool = Field(
        False, description="Store message text and session titles (off: only lengths are kept)."
    )
    error_message_max_chars: int = Field(2000, ge=0, description="RunFailed.error is cut to this length.")

    # -- Retention (days; 0 = keep for ever) ----------------------------------------------------
    raw_retention_days: int = Field(
        90, ge=0, description="Raw event tables, counted from ingestion (must exceed Kafka retention)."
    )
    hourly_retention_days: int = Field(180, ge=0, description="Hourly aggregates.")
    daily_retention_days: int = Field(0, ge=0, description="Daily aggregates (0 = for ever).")

    # -- Query API ------------------------------------------------------------------------------
    # 1 s: a dashboard refreshing every few seconds still sees every event within ~1-2 s of
    # it being published, while a burst of identical widget queries costs ClickHouse one query.
    query_cache_ttl_s: float = Field(
        1.0, ge=0, description="How long one metrics answer is reused (0 = no cache)."
    )
    query_cache_max_entries: int = Field(1024, ge=1)
    max_days: int = Field(3650, ge=1, description="Longest window a metrics query may cover.")
    max_series_points: int = Field(
        4400, ge=1, description="Most buckets in one series (4400 = 183 days of hours, 12 years of days)."
    )
    top_agents_default: int = Field(10, ge=1)
    sql_max_execution_time_s: int = Field(10, ge=1, description="POST /v1/sql time limit.")
    sql_max_result_rows: int = Field(10_000, ge=1, description="POST /v1/sql row limit.")
    sql_max_query_chars: int = Field(20_000, ge=1)

    @field_validator("raw_retention_days")
    @classmethod
    def _raw_outlives_kafka(cls, value: int) -> int:
        if 0 < value < MIN_RAW_RETENTION_DAYS:
            raise ValueError(
                f"must be 0 (keep) or >= {MIN_RAW_RETENTION_DAYS}: raw rows are the duplicate "
                "filter and must outlive Kafka's retention"
            )
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> MetricsSettings:
        if self.retry_max_backoff_ms < self.retry_initial_backoff_ms:
            raise ValueError("retry_max_backoff_ms must be >= retry_initial_backoff_ms")
        return self
