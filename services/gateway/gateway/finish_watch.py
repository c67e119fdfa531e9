"""Wakes the requests waiting for a run, whichever gateway replica projected it.

The projector (consumer group) updates each run on exactly one replica, so on its own it can
only wake the waiters of that replica; the others would have to poll the database (with 500
waiting requests, that polling cost more CPU than serving them). This reader has no group:
every replica sees every terminal run event from the moment it started, and resolves its
own waiters for that run. The waiter then reads the run from the database, re-reading
shortly if the projecting replica has not committed it yet (``RunService.wait``).
"""

from __future__ import annotations

from gateway.consuming import ConsumerTask
from gateway.runs import RunWaiters
from shared.events import Event, RunCancelled, RunCompleted, RunFailed
from shared.settings import KafkaSettings
from shared.topics import Topic

_STATUS = {RunCompleted: "completed", RunFailed: "failed", RunCancelled: "cancelled"}


class RunFinishWatcher(ConsumerTask):
    def __init__(self, kafka: KafkaSettings, waiters: RunWaiters) -> None:
        self.kafka = kafka
        self.waiters = waiters

    async def start(self) -> None:
        await self._tail(self.kafka, str(Topic.RUN_EVENTS), self._see, "gateway-run-finish-watch")

    def _see(self, event: Event) -> None:
        status = _STATUS.get(type(event))
        if status and event.run_id and self.waiters.is_waiting(event.run_id):
            self.waiters.resolve(event.run_id, status)
