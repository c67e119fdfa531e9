"""Batch writer: events -> one insert per raw table per batch, exactly once.

Exactly-once counting, raw tables and every aggregate, with an at-least-once consumer
------------------------------------------------------------------------------------
Kafka redelivers: after a crash between insert and offset commit, after a rebalance, or
with different batch boundaries than the first time. Materialized views aggregate *what is
inserted*, so a duplicate must be stopped before the insert, not merged away later. Four
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

4. Interrupted blocks: an insert is not atomic with its materialized views. ClickHouse
   commits the raw table's part first, then one part per MV target; a kill -9 in between
   leaves raw rows whose aggregates are missing, and step 2 would then skip the redelivered
   events for ever. So each raw row carries ``ingest_token`` (its block's token), and
   ``ingest_blocks`` records a block once every table has it. When step 2 finds stored events
   whose block has no record, that block is read back from the raw table (ordered by
   event_id, as it was first sent) and inserted again with its own token: step 3's
   deduplication drops it where it landed and inserts it where it did not. Measured with
   chdb 26.9: a kill -9 during the MV pushes leaves the raw rows and only some targets.

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
    completed_blocks: int = 0


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
        finished: list[tuple[str, str, int]] = []  # (token, table, rows) for ingest_blocks
        for table in TABLES:
            rows = grouped.get(table)
            if not rows:
                continue
            stored = await self._retrying(f"duplicate check on {table}", self._stored_tokens, table, rows)
            fresh = [row for row in rows if row.event_id not in stored]
            duplicates += len(rows) - len(fresh)
            for token in await self._retrying(
                f"block check on {table}", self._unfinished_blocks, set(stored.values())
            ):
                count = await self._retrying(f"completing a block of {table}", self._complete, table, token)
                log.warning("completed an interrupted insert into %s (%d rows, token %s)", table, count, token)
                self.stats.completed_blocks += 1
                finished.append((token, table, count))
            if fresh:
                fresh.sort(key=lambda row: row.event_id)
                token = dedup_token(table, (row.event_id for row in fresh))
                await self._retrying(f"insert into {table}", self._insert, table, fresh, token)
                finished.append((token, table, len(fresh)))
                inserted[table] = len(fresh)
                self.stats.inserted_rows[table] = self.stats.inserted_rows.get(table, 0) + len(fresh)
        if finished:
            await self._retrying("recording finished blocks", self._record_finished, finished)
        self.stats.batches += 1
        self.stats.duplicate_rows += duplicates
        return WriteResult(inserted=inserted, duplicates=duplicates)

    # -- steps (blocking; run in a worker thread) ------------------------------------------

    def _stored_tokens(self, table: str, rows: list[Row]) -> dict[str, str]:
        """event_id -> ingest_token of the rows already stored."""
        return dict(
            self._client.query(
                f"SELECT event_id, ingest_token FROM {self._db}.`{table}` "
                "WHERE event_id IN {ids:Array(String)}",
                parameters={"ids": [row.event_id for row in rows]},
            ).result_rows
        )

    def _unfinished_blocks(self, tokens: set[str]) -> list[str]:
        """The tokens among ``tokens`` without an ``ingest_blocks`` record ('' = stored before
        the bookkeeping existed: complete)."""
        tokens.discard("")
        if not tokens:
            return []
        done = {
            token
            for (token,) in self._client.query(
                f"SELECT token FROM {self._db}.ingest_blocks WHERE token IN {{t:Array(String)}}",
                parameters={"t": sorted(tokens)},
            ).result_rows
        }
        return sorted(tokens - done)

    def _complete(self, table: str, token: str) -> int:
        """Send the stored rows of block ``token`` again, as the same block (same rows, same
        order, same token)."""
        columns = ", ".join(f"`{c}`" for c in (*COLUMNS[table], "ingest_token"))
        rows = self._client.query(
            f"SELECT {columns} FROM {self._db}.`{table}` WHERE ingest_token = {{t:String}} "
            "ORDER BY event_id LIMIT 1 BY event_id",
            parameters={"t": token},
        ).result_rows
        if rows:
            self._insert_values(table, rows, token)
        return len(rows)

    def _insert(self, table: str, rows: list[Row], token: str) -> None:
        """Insert ``rows`` as one block labelled ``token`` (in ingest_token, and as the
        insert_deduplication_token)."""
        self._insert_values(table, [(*row.values, token) for row in rows], token)

    def _insert_values(self, table: str, values: Sequence[Sequence[Any]], token: str) -> None:
        """``values``: ``COLUMNS[table]`` followed by ``ingest_token``."""
        if self._fault is not None:
            self._fault()
        self._client.insert(
            table,
            values,
            column_names=[*COLUMNS[table], "ingest_token"],
            column_type_names=self._types(table),
            database=self._database,
            settings={
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )

    def _record_finished(self, blocks: list[tuple[str, str, int]]) -> None:
        self._client.insert(
            "ingest_blocks",
            [list(block) for block in blocks],
            column_names=["token", "table_name", "row_count"],
            database=self._database,
        )

    def _types(self, table: str) -> list[str]:
        if table not in self._column_types:
            types = dict(
                self._client.query(
                    "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                    parameters={"db": self._database, "t": table},
                ).result_rows
            )
            self._column_types[table] = [types[name] for name in (*COLUMNS[table], "ingest_token")]
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
