"""Wakes the requests waiting for a run, whichever gateway replica projected it.

The projector (consumer group) updates each run on exactly one replica, so on its own it can
only wake the waiters of that replica; the others would have to poll the database (with 500
waiting requests, that polling cost more CPU than serving them). This reader has no group:
every replica sees every terminal run event from the moment it started, and resolves its
own waiters for that run. The waiter then reads the run from the database, re-reading
shortly if the projecting replica has not committed it yet (``RunService.wait``).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from gateway.consuming import ConsumerTask
from gateway.runs import RunWaiters
from shared.events import EventDecodeError, RunCancelled, RunCompleted, RunFailed, decode
from shared.settings import KafkaSettings
from shared.topics import Topic

log = logging.getLogger(__name__)

_STATUS = {RunCompleted: "completed", RunFailed: "failed", RunCancelled: "cancelled"}


class RunFinishWatcher(ConsumerTask):
    def __init__(self, kafka: KafkaSettings, waiters: RunWaiters) -> None:
        self.kafka = kafka
        self.waiters = waiters

    async def start(self) -> None:
        # No group: every partition, from the end (only runs finishing from now on matter).
        consumer = AIOKafkaConsumer(str(Topic.RUN_EVENTS), bootstrap_servers=self.kafka.servers, group_id=None,
                                    auto_offset_reset="latest", enable_auto_commit=False,
                                    fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
                                    **self.kafka.aiokafka_security_kwargs())  # TLS / SASL
        await self._launch(consumer, self._loop, "gateway-run-finish-watch")

    async def _loop(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run event fetch failed")
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    self._see(record.value or b"")

    def _see(self, value: bytes) -> None:
        try:
            event = decode(value)
        except EventDecodeError:
            return  # the projector logs it; nothing to wake
        status = _STATUS.get(type(event))
        if status and event.run_id and self.waiters.is_waiting(event.run_id):
            self.waiters.resolve(event.run_id, status)
