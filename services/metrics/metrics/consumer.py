"""Kafka -> ClickHouse: batches of session, run and usage events, committed after the insert.

Pipeline (one asyncio task):

    getmany() -> buffer -> [size or age reached] -> decode -> dead-letter the undecodable
    -> drop unused types -> writer.write() (retries until stored) -> commit offsets

- aiokafka ``AIOKafkaConsumer`` directly, ``enable_auto_commit=False``: offsets move only
  after the batch is stored (FastStream's ack policies lose or loop messages: see
  docs/platform-notes.md). A crash anywhere before the commit means redelivery, which the
  writer turns into a no-op (see ``metrics.writer``).
- A batch is flushed when it holds ``batch_max_records`` records or its first record is
  ``batch_max_wait_ms`` old, so an event is queryable well under a second after it arrives.
- Undecodable or schema-invalid messages go to ``Topic.DEAD_LETTER`` (with the context headers
  of ``shared.kafka.deadletter``) and are committed with their batch: they never block a
  partition. Event types metrics does not use (RunStarted, ...) are committed and ignored.
- Rebalance: the revoke callback takes the same lock as a flush, flushes and commits what is
  buffered, and only then lets the partitions go, so the next owner starts after our last
  insert and never races it.
- ``stop()``: stop fetching, flush, commit, leave the group, close. If ClickHouse is down at
  that moment the pending batch is not committed (it will be redelivered), never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from metrics.rows import invalid_reason, is_used
from metrics.settings import MetricsSettings
from metrics.writer import MetricsWriter, RetryPolicy, WriterStopped
from shared.events import Event, EventDecodeError, decode
from shared.kafka import mock_compat
from shared.kafka.deadletter import send_to_dead_letter
from shared.topics import Topic

log = logging.getLogger("agentos.metrics.consumer")

#: The topics metrics reads. RUN_COMMANDS: RunRequested = one user message.
TOPICS: tuple[str, ...] = (
    str(Topic.SESSIONS),
    str(Topic.RUN_COMMANDS),
    str(Topic.RUN_EVENTS),
    str(Topic.USAGE),
)


STOP_POLL_S = 0.2


@dataclass
class ConsumerStats:
    records: int = 0
    events_written: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    commits: int = 0
    failed_commits: int = 0
    last_flush_at: float | None = None


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: MetricsConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner._owned = set(assigned)


class MetricsConsumer:
    def __init__(self, settings: MetricsSettings, writer: MetricsWriter, *, topics: Sequence[str] = TOPICS):
        self._settings = settings
        self._kafka = settings.kafka
        self._writer = writer
        self._topics = tuple(topics)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._buffer: list = []
        self._buffer_started: float | None = None
        self._owned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry = RetryPolicy(
            settings.retry_initial_backoff_ms / 1000, settings.retry_max_backoff_ms / 1000
        )
        self.stats = ConsumerStats()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._started.is_set() and not self._stopping.is_set()

    async def wait_started(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._started.wait(), timeout)

    def stop(self) -> None:
        """Ask ``run()`` to flush, commit and return."""
        self._stopping.set()

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (what the service does)."""
        self._task = asyncio.create_task(self.run(), name="metrics-consumer")
        return self._task

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop consuming, flush and commit, leave the group. If the last flush cannot finish
        within ``grace_s`` (ClickHouse down), give up on it: it stays uncommitted and is
        redelivered later."""
        self.stop()
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            log.warning("last flush still failing after %.1f s: leaving it uncommitted", grace_s)
            self._writer.stop()
            await asyncio.wait({task}, timeout=grace_s)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("consumer ended with an error", exc_info=task.exception())

    async def run(self) -> None:
        """Consume until ``stop()``. Connection failures at start are retried; an unexpected
        failure restarts the consumer from the last committed offsets (nothing uncommitted is
        lost, what was stored is deduplicated)."""
        delays = iter(self._retry.delays())
        while not self._stopping.is_set():
            try:
                if not await self._connect():
                    return
                await self._loop()
                return
            except Exception:
                log.exception("consumer failed: restarting from the last committed offsets")
            finally:
                await self._close()
                self._buffer, self._buffer_started, self._owned = [], None, set()
            try:
                await asyncio.wait_for(self._stopping.wait(), next(delays))
            except TimeoutError:
                pass

    async def _connect(self) -> bool:
        delays = iter(self._retry.delays())
        while not self._stopping.is_set():
            consumer = self._make_consumer()
            producer = self._make_producer()
            try:
                await producer.start()
                await consumer.start()
            except KafkaError as exc:
                await _quietly(consumer.stop())
                await _quietly(producer.stop())
                delay = next(delays)
                log.warning("Kafka not reachable (%s), retrying in %.1f s", exc, delay)
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
                continue
            consumer.subscribe(list(self._topics), listener=_Rebalance(self))
            self._consumer, self._producer = consumer, producer
            self._started.set()
            log.info("consuming %s as group %s", ", ".join(self._topics), self._settings.consumer_group)
            return True
        return False

    def _make_consumer(self) -> AIOKafkaConsumer:
        mock_compat.apply_if_enabled()  # lets a second metrics replica join on the dev broker
        k = self._kafka
        return AIOKafkaConsumer(
            bootstrap_servers=k.servers,
            group_id=self._settings.consumer_group,
            client_id=f"{k.client_id_prefix}-metrics",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=k.fetch_max_wait_ms,
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            request_timeout_ms=max(k.request_timeout_ms, k.session_timeout_ms + 5000),
            max_poll_records=self._settings.batch_max_records,
            **k.aiokafka_security_kwargs(),  # TLS / SASL (KAFKA_SECURITY_PROTOCOL)
        )

    def _make_producer(self) -> AIOKafkaProducer:
        k = self._kafka
        return AIOKafkaProducer(
            bootstrap_servers=k.servers,
            client_id=f"{k.client_id_prefix}-metrics-dlq",
            acks="all",
            request_timeout_ms=k.request_timeout_ms,
            **k.aiokafka_security_kwargs(),  # the dead-letter producer talks to the same cluster
        )

    async def _close(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        if consumer is not None:
            await _quietly(consumer.stop())
        if producer is not None:
            await _quietly(producer.stop())

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._consumer is not None
        max_records = self._settings.batch_max_records
        max_wait = self._settings.batch_max_wait_ms / 1000
        while not self._stopping.is_set():
            if self._buffer_started is None:
                timeout = max_wait
            else:
                timeout = max(0.0, self._buffer_started + max_wait - time.monotonic())
            room = max(1, max_records - len(self._buffer))
            # Wake up at least every STOP_POLL_S so stop() is noticed even with a long max wait.
            timeout = min(timeout, STOP_POLL_S)
            fetched = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=room)
            async with self._lock:
                for tp, records in fetched.items():
                    # Records of a partition revoked while getmany() returned belong to the
                    # next owner now.
                    if tp in self._owned:
                        self._add(records)
                if self._due(max_records, max_wait):
                    try:
                        await self._flush_locked()
                    except WriterStopped:
                        log.warning("stopping with %d records not stored: not committed", len(self._buffer))
                        return
        async with self._lock:
            if self._buffer:
                try:
                    await self._flush_locked()
                except WriterStopped:
                    log.warning("stopping with %d records not stored: not committed", len(self._buffer))

    def _add(self, records: list) -> None:
        if records and self._buffer_started is None:
            self._buffer_started = time.monotonic()
        self._buffer.extend(records)
        self.stats.records += len(records)

    def _due(self, max_records: int, max_wait: float) -> bool:
        if not self._buffer:
            return False
        assert self._buffer_started is not None
        return len(self._buffer) >= max_records or time.monotonic() - self._buffer_started >= max_wait

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            try:
                if self._buffer:
                    await self._flush_locked()
            except WriterStopped:
                log.warning("partitions revoked while stopping: %d records left uncommitted", len(self._buffer))
                self._buffer, self._buffer_started = [], None
            finally:
                self._owned -= set(revoked)

    # -- one batch ---------------------------------------------------------------------------

    async def _flush_locked(self) -> None:
        records = self._buffer
        started = time.perf_counter()
        events: list[Event] = []
        for record in records:
            event, problem = self._parse(record)
            if problem is not None:
                await self._dead_letter(record, problem)
            elif event is not None:
                events.append(event)
        if events:
            await self._writer.write(events)
        self.stats.events_written += len(events)
        self.stats.batches += 1
        self.stats.last_flush_at = time.time()
        self._buffer, self._buffer_started = [], None
        await self._commit(_positions(records))
        log.debug("batch of %d records (%d events) stored and committed in %.1f ms",
                  len(records), len(events), (time.perf_counter() - started) * 1000)

    def _parse(self, record) -> tuple[Event | None, str | None]:
        if record.value is None:
            return None, "empty message (no value)"
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            return None, f"undecodable event: {exc}"
        except Exception as exc:  # noqa: BLE001 - e.g. bytes that are not UTF-8
            return None, f"undecodable event: {exc.__class__.__name__}: {exc}"
        if not is_used(event):
            self.stats.ignored += 1
            return None, None
        problem = invalid_reason(event)
        if problem is not None:
            return None, f"event cannot be stored: {problem}"
        return event, None

    async def _dead_letter(self, record, error: str) -> None:
        assert self._producer is not None
        delays = iter(self._retry.delays())
        attempt = 0
        while True:
            attempt += 1
            try:
                await send_to_dead_letter(
                    self._producer,
                    key=record.key,
                    value=record.value,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=error,
                    attempts=1,
                    consumer_group=self._settings.consumer_group,
                    original_headers=list(record.headers or ()),
                )
                break
            except KafkaError as exc:
                if self._stopping.is_set() and attempt > 3:
                    raise WriterStopped(f"dead-lettering failed while stopping: {exc}") from exc
                delay = next(delays)
                log.warning("dead-lettering %s:%s@%s failed, retrying in %.1f s: %s",
                            record.topic, record.partition, record.offset, delay, exc)
                await asyncio.sleep(delay)
        self.stats.dead_lettered += 1
        log.warning("dead-lettered %s:%s@%s: %s", record.topic, record.partition, record.offset, error[:300])

    async def _commit(self, positions: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        positions = {tp: pos for tp, pos in positions.items() if tp in self._owned}
        if not positions:
            return
        try:
            await self._consumer.commit(positions)
            self.stats.commits += 1
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: the next owner re-reads from the last commit and the writer
            # drops what we already stored.
            self.stats.failed_commits += 1
            log.warning("commit failed after a rebalance (redelivery will be deduplicated): %s", exc)
        except KafkaError as exc:
            # The rows are stored; the next successful commit covers these offsets too.
            self.stats.failed_commits += 1
            log.warning("commit failed (redelivery will be deduplicated): %s", exc)


def _positions(records: list) -> dict[TopicPartition, int]:
    positions: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        positions[tp] = max(positions.get(tp, 0), record.offset + 1)
    return positions


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001 - closing: nothing left to do about it
        log.debug("ignored while closing: %s", exc)
