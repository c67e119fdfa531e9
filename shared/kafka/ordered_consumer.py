"""An at-least-once Kafka consumer that runs many messages at once but never two with the
same key at once, in key order.

Why not a FastStream subscriber: it handles one message at a time, and its ack policies
either lose a failed message (ACK_FIRST, ACK), retry it forever (NACK_ON_ERROR) or commit
past unfinished ones (MANUAL) — see docs/platform-notes. An LLM run takes seconds, so a
worker must hold hundreds in flight and still only commit what is finished.

* Concurrency: up to ``max_in_flight`` messages are being handled; when full the consumer
  stops fetching (backpressure), so memory stays bounded.
* Order: messages with the same key (session id) form a chain; each waits for the previous
  one to finish. Different keys run concurrently.
* Commits: per partition, the lowest unfinished offset (``OffsetTracker``), every
  ``commit_interval_s`` and on shutdown/revocation.
* Failures: a handler raising ``PoisonMessage`` is dead-lettered at once; any other exception
  is retried ``max_attempts`` times with exponential backoff, then dead-lettered. Either way the
  partition moves on.
* Shutdown: stop fetching, wait up to ``drain_timeout_s`` for in-flight work, commit what is
  finished, cancel the rest (it is redelivered to whoever owns the partition next).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.kafka import mock_compat
from shared.kafka.offsets import OffsetTracker
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord], Awaitable[None]]
DeadLetter = Callable[[ConsumerRecord, BaseException, int], Awaitable[None]]


class PoisonMessage(Exception):
    """The message can never be processed (undecodable, invalid schema, unknown version)."""


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: OrderedConcurrentConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


class OrderedConcurrentConsumer:
    def __init__(
        self,
        *,
        topics: list[str],
        group_id: str,
        kafka: KafkaSettings,
        handler: Handler,
        dead_letter: DeadLetter,
        max_in_flight: int = 256,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        commit_interval_s: float = 0.2,
        drain_timeout_s: float = 10.0,
        revoke_grace_s: float = 2.0,
        key_of: Callable[[ConsumerRecord], Any] = lambda record: record.key,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self.topics = topics
        self.group_id = group_id
        self.kafka = kafka
        self.handler = handler
        self.dead_letter = dead_letter
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.commit_interval_s = commit_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.revoke_grace_s = revoke_grace_s
        self.key_of = key_of
        self.consumer_options = consumer_options or {}

        self.offsets = OffsetTracker()
        self._tails: dict[Any, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._slot_freed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task | None = None
        self._commit_task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self.processed = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        mock_compat.apply_if_enabled()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.servers,
            group_id=self.group_id,
            client_id=f"{self.kafka.client_id_prefix}-{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            session_timeout_ms=self.kafka.session_timeout_ms,
            heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            request_timeout_ms=max(self.kafka.request_timeout_ms, self.kafka.session_timeout_ms + 5000),
            # A run can take minutes: the poll loop keeps polling (it only stops fetching
            # when full), so this only bounds a stuck loop.
            max_poll_interval_ms=300_000,
            **self.kafka.aiokafka_security_kwargs(),  # TLS / SASL (KAFKA_SECURITY_PROTOCOL)
            **self.consumer_options,
        )
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"{self.group_id}-fetch")
        self._commit_task = asyncio.create_task(self._commit_loop(), name=f"{self.group_id}-commit")

    async def stop(self) -> None:
        """Graceful: stop fetching, drain in-flight up to the deadline, commit, close."""
        self._stopping.set()
        for task in (self._loop_task,):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("shutdown: %d messages unfinished after %.1fs; they will be redelivered",
                            len(pending), self.drain_timeout_s)
                await asyncio.wait(pending, timeout=2)
        if self._commit_task:
            self._commit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._commit_task
        with contextlib.suppress(Exception):
            await self.commit()
        if self._consumer:
            await self._consumer.stop()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- fetching --------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            free = self.max_in_flight - len(self._tasks)
            if free <= 0:
                # Backpressure: wait for a slot instead of buffering without bound. aiokafka keeps
                # heartbeating in the background meanwhile.
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=free)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker hiccup must not kill the worker
                log.exception("fetch failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._dispatch(tp, record)

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        self.offsets.started(tp, record.offset)
        key = (tp.topic, self.key_of(record))
        previous = self._tails.get(key)
        task = asyncio.create_task(self._process(tp, record, previous))
        self._tails[key] = task
        self._tasks.add(task)

        def _done(t: asyncio.Task, key=key) -> None:
            self._tasks.discard(t)
            if self._tails.get(key) is t:
                del self._tails[key]
            self._slot_freed.set()

        task.add_done_callback(_done)

    async def _process(self, tp: TopicPartition, record: ConsumerRecord, previous: asyncio.Task | None) -> None:
        if previous is not None:
            # Same key: strictly after the previous message. It never raises (failures end in
            # the dead-letter topic) unless it was cancelled by a shutdown — then this one must
            # not run either, or it would overtake its predecessor on redelivery.
            await asyncio.shield(previous)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.handler(record)
                break
            except asyncio.CancelledError:
                raise  # shutdown: leave it unfinished so it is redelivered
            except PoisonMessage as exc:
                await self._dead_letter(record, exc, attempt)
                break
            except Exception as exc:
                if attempt >= self.max_attempts:
                    log.exception("giving up on %s:%s@%s after %d attempts", tp.topic, tp.partition, record.offset, attempt)
                    await self._dead_letter(record, exc, attempt)
                    break
                log.warning("handler failed on %s:%s@%s (attempt %d): %r; retrying",
                            tp.topic, tp.partition, record.offset, attempt, exc)
                await asyncio.sleep(min(10.0, self.retry_backoff_s * 2 ** (attempt - 1)))
        self.offsets.finished(tp, record.offset)
        self.processed += 1

    async def _dead_letter(self, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
        # Dead-lettering itself must not be skipped: retry until it works or we are stopped.
        delay = 0.2
        while True:
            try:
                await self.dead_letter(record, exc, attempts)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dead-letter publish failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- committing ------------------------------------------------------------------------
    async def commit(self) -> None:
        if self._consumer is None:
            return
        async with self._commit_lock:
            positions = self.offsets.to_commit()
            if not positions:
                return
            assignment = self._consumer.assignment()
            positions = {tp: pos for tp, pos in positions.items() if tp in assignment}
            if not positions:
                return
            await self._consumer.commit({tp: OffsetAndMetadata(pos, "") for tp, pos in positions.items()})
            self.offsets.mark_committed(positions)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.commit_interval_s)
            try:
                await self.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("commit failed; will retry", exc_info=True)

    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        if not revoked:
            return
        # Give in-flight work on these partitions a short grace period so the next owner
        # redoes as little as possible, then commit and hand them over.
        revoked_set = set(revoked)
        deadline = asyncio.get_running_loop().time() + self.revoke_grace_s
        while any(self.offsets.in_flight(tp) for tp in revoked_set) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            await self.commit()
        self.offsets.forget(revoked_set)
