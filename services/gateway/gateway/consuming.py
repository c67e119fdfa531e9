"""The lifecycle the gateway's Kafka readers share: start a consumer, drain it in a task,
and on stop cancel the task before closing the consumer (closing first would make the loop
fail on a dead client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.kafka import mock_compat


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
