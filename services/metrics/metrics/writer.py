"""Batch writer: events -> one insert per raw table per batch, exactly once.

Exactly-once counting, raw tables and every aggregate, with an at-least-once consumer
------------------------------------------------------------------------------------
Kafka redelivers: after a crash between insert and offset commit, after a rebalance, or
with different batch boundaries than the first time. Materialized views aggregate *what is
inserted*, so a duplicate must be stopped before the insert, not merged away later. Three
layers, each covering what the previous one cannot:

1. Within a batch: first occurrence of an ``event_id`` wins (``rows.rows_by_table``).
2. Across batches: before inserting, one ``SELECT event_id FROM <table> WHERE event_id IN
   {ids:Array(String)}`` per table drops events already stored. Safe without locks because a
   Kafka partition has one consumer at a time and the consumer flushes and commits (under the
   same lock) before it gives a partition away in a rebalance.
3. Retries of one insert: an insert whose outcome is unknown (timeout, connection reset,
   error after the data was written) is retried with *the same block* and the same
   ``insert_deduplication_token`` (a hash of its event ids), with
   ``deduplicate_blocks_in_dependent_materialized_views = 1``. Every raw table and MV target
   has ``non_replicated_deduplication_window``, so ClickHouse drops the block where it already
   landed and inserts it where it did not (an MV target that failed the first time still gets
   its rows). The check of step 2 is not re-run on retry for that reason.

The raw tables are also ``ReplacingMergeTree ORDER BY event_id``: a duplicate that got
through anyway (e.g. two consumers racing in a broken rebalance) collapses in the raw table
on merge; the aggregates cannot be repaired that way, which is why 1-3 exist.

Failures are retried with exponential backoff until they succeed: a batch is never skipped.
Only ``stop()`` ends the retries (``WriterStopped``): the caller must then not commit, and the
batch is redelivered to whoever consumes next.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from metrics.migrate import quote_database
from metrics.rows import COLUMNS, TABLES, Row, rows_by_table
from shared.events import Event

log = logging.getLogger("agentos.metrics.writer")

T = TypeVar("T")


class WriterStopped(Exception):
    """``stop()`` was called while a write was still failing: nothing may be committed."""


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0

    def delays(self) -> Iterable[float]:
        delay = self.initial_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


@dataclass
class WriterStats:
    batches: int = 0
    inserted_rows: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0
    failed_attempts: int = 0


@dataclass(frozen=True)
class WriteResult:
    inserted: dict[str, int]
    duplicates: int


def dedup_token(table: str, event_ids: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(event_ids)).encode()).hexdigest()
    return f"{table}:{digest}"


class MetricsWriter:
    def __init__(
        self,
        client: Client,
        database: str,
        *,
        store_content: bool = False,
        error_max_chars: int = 2000,
        retry: RetryPolicy | None = None,
        fault: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        # Chaos hook: called before every insert; raising makes the insert fail (fault tests).
        self._fault = fault
        self._database = database
        self._db = quote_database(database)
        self._store_content = store_content
        self._error_max_chars = error_max_chars
        self._retry = retry or RetryPolicy()
        self._stopping = asyncio.Event()
        self._column_types: dict[str, list[str]] = {}
        self.stats = WriterStats()

    def stop(self) -> None:
        """Make a write that is stuck retrying give up with ``WriterStopped``."""
        self._stopping.set()

    async def write(self, events: Sequence[Event]) -> WriteResult:
        """Store ``events`` (duplicates of stored events are dropped). Returns once every row is
        in ClickHouse; retries for as long as it takes."""
        grouped = rows_by_table(
            events, store_content=self._store_content, error_max_chars=self._error_max_chars
        )
        inserted: dict[str, int] = {}
        duplicates = 0
        for table in TABLES:
            rows = grouped.get(table)
            if not rows:
                continue
            fresh = await self._retrying(f"duplicate check on {table}", self._new_rows, table, rows)
            duplicates += len(rows) - len(fresh)
            if fresh:
                token = dedup_token(table, (row.event_id for row in fresh))
                await self._retrying(f"insert into {table}", self._insert, table, fresh, token)
                inserted[table] = len(fresh)
                self.stats.inserted_rows[table] = self.stats.inserted_rows.get(table, 0) + len(fresh)
        self.stats.batches += 1
        self.stats.duplicate_rows += duplicates
        return WriteResult(inserted=inserted, duplicates=duplicates)

    # -- steps (blocking; run in a worker thread) ------------------------------------------

    def _new_rows(self, table: str, rows: list[Row]) -> list[Row]:
        stored = {
            event_id
            for (event_id,) in self._client.query(
                f"SELECT event_id FROM {self._db}.`{table}` WHERE event_id IN {{ids:Array(String)}}",
                parameters={"ids": [row.event_id for row in rows]},
            ).result_rows
        }
        return [row for row in rows if row.event_id not in stored]

    def _insert(self, table: str, rows: list[Row], token: str) -> None:
        if self._fault is not None:
            self._fault()
        self._client.insert(
            table,
            [row.values for row in rows],
            column_names=list(COLUMNS[table]),
            column_type_names=self._types(table),
            database=self._database,
            settings={
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )

    def _types(self, table: str) -> list[str]:
        if table not in self._column_types:
            types = dict(
                self._client.query(
                    "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                    parameters={"db": self._database, "t": table},
                ).result_rows
            )
            self._column_types[table] = [types[name] for name in COLUMNS[table]]
        return self._column_types[table]

    # -- retries ---------------------------------------------------------------------------

    async def _retrying(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        delays = iter(self._retry.delays())
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(fn, *args)
            except Exception as exc:  # noqa: BLE001 - any failure is retried; never skip a batch
                self.stats.failed_attempts += 1
                if self._stopping.is_set():
                    raise WriterStopped(f"{what} failed and the writer is stopping: {exc}") from exc
                delay = next(delays)
                log.warning("%s failed (attempt %d), retrying in %.2f s: %s", what, attempt, delay, exc)
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    continue
                raise WriterStopped(f"{what} failed and the writer is stopping: {exc}") from exc
