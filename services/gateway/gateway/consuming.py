"""The lifecycle the gateway's Kafka readers share: start a consumer, drain it in a task,
and on stop cancel the task before closing the consumer (closing first would make the loop
fail on a dead client). ``_tail`` is the group-less reader (every partition, from the end)
of the delta hub and the run-finish watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.events import Event, EventDecodeError, decode
from shared.kafka import mock_compat
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


class ConsumerTask:
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task | None = None

    async def _launch(self, consumer: AIOKafkaConsumer, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        mock_compat.apply_if_enabled()  # a second gateway replica joining the projector group
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(loop(), name=name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    async def _tail(self, kafka: KafkaSettings, topic: str, on_event: Callable[[Event], None], name: str) -> None:
        """Read ``topic`` with no consumer group from its end, calling ``on_event`` for every
        decodable event (only what happens from now on matters to these readers)."""
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.servers, group_id=None, auto_offset_reset="latest",
                                    enable_auto_commit=False, fetch_max_wait_ms=kafka.fetch_max_wait_ms,
                                    **kafka.aiokafka_security_kwargs())  # TLS / SASL

        async def loop() -> None:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: fetch failed", name)
                    await asyncio.sleep(0.5)
                    continue
                for records in batches.values():
                    for record in records:
                        try:
                            event = decode(record.value or b"")
                        except EventDecodeError:
                            continue  # undecodable: the group consumers log and dead-letter it
                        on_event(event)

        await self._launch(consumer, loop, name)
