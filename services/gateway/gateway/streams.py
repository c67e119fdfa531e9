"""Server-Sent Events for runs.

``DeltaHub`` listens to the run-deltas topic (no consumer group: every gateway instance
sees every delta, from the moment it started) and keeps each run's chunks in memory for a
while, indexed by their sequence number. A stream sends ``delta`` events with ``id: <seq>``
and ends with a ``done`` event carrying the final result and usage. A client that reconnects
with ``Last-Event-ID: <seq>`` gets exactly the chunks after it; if this instance no longer
has them (restart, another replica), the ``done`` event's full ``response`` still completes
the text — nothing is lost and no chunk is sent twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.consuming import ConsumerTask
from gateway.db.models import Run
from gateway.runs import TERMINAL, WAKE_RECHECK_S, RunWaiters
from shared.events import Event, RunDelta
from shared.settings import KafkaSettings
from shared.topics import Topic


@dataclass
class _RunDeltas:
    chunks: dict[int, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    touched: float = field(default_factory=time.monotonic)


class DeltaHub(ConsumerTask):
    def __init__(self, kafka: KafkaSettings, max_runs: int = 10_000) -> None:
        self.kafka = kafka
        self.max_runs = max_runs
        self._runs: OrderedDict[str, _RunDeltas] = OrderedDict()

    def _get(self, run_id: str) -> _RunDeltas:
        entry = self._runs.get(run_id)
        if entry is None:
            entry = self._runs[run_id] = _RunDeltas()
            while len(self._runs) > self.max_runs:  # bounded memory: forget the oldest runs
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        entry.touched = time.monotonic()
        return entry

    def add(self, delta: RunDelta) -> None:
        entry = self._get(delta.run_id or "")
        entry.chunks.setdefault(delta.seq, delta.content)  # a redelivered chunk changes nothing
        entry.changed.set()

    async def start(self) -> None:
        await self._tail(self.kafka, str(Topic.RUN_DELTAS), self._see, "gateway-deltas")

    def _see(self, event: Event) -> None:
        if isinstance(event, RunDelta) and event.run_id:
            self.add(event)

    async def stream(self, run_id: str, sessionmaker: async_sessionmaker, waiters: RunWaiters, *,
                     last_seq: int = -1, heartbeat_s: float = 10.0, timeout_s: float = 600.0,
                     poll_interval_s: float = 5.0) -> AsyncIterator[bytes]:
        """Chunks as they arrive, then ``done``. The run row is read when the stream starts,
        when the run's waiter fires (it finished: see ``gateway.finish_watch``), shortly after
        that if the projection was not committed yet, and every ``poll_interval_s`` as a
        safety net - not once per chunk."""
        entry = self._get(run_id)
        next_seq = last_seq + 1
        deadline = time.monotonic() + timeout_s
        finished: Run | None = None
        grace_until: float | None = None
        last_beat = time.monotonic()
        read_at = time.monotonic()  # when to read the run row next
        recheck_s = WAKE_RECHECK_S
        fut = waiters.future(run_id)
        try:
            while True:
                while next_seq in entry.chunks:
                    yield _sse("delta", {"seq": next_seq, "content": entry.chunks[next_seq]}, event_id=str(next_seq))
                    next_seq += 1
                now = time.monotonic()
                if finished is None and now >= read_at:
                    async with sessionmaker() as db:
                        run = await db.get(Run, run_id)
                    if run is not None and run.status in TERMINAL:
                        finished = run
                        # Deltas travel on their own topic: give late ones a moment to arrive.
                        grace_until = now + 1.0
                    elif fut.done():  # woken before the projection was committed: look again soon
                        fut = waiters.future(run_id)
                        read_at, recheck_s = now + recheck_s, min(recheck_s * 2, poll_interval_s)
                    else:
                        read_at = now + poll_interval_s
                if finished is not None and (next_seq >= finished.deltas or now > (grace_until or 0)):
                    yield _sse("done", _final(finished, next_seq), event_id="done")
                    return
                if now > deadline:
                    yield _sse("error", {"error": "stream timed out; poll the run", "error_type": "timeout"})
                    return
                entry.changed.clear()
                changed = asyncio.ensure_future(entry.changed.wait())
                try:
                    if finished is not None:
                        wait_for = 0.05
                    else:
                        wait_for = max(0.0, min(heartbeat_s, read_at - now))
                    waits = {changed} if fut.done() else {changed, fut}
                    done, _ = await asyncio.wait(waits, timeout=wait_for, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                if fut in done:
                    read_at = time.monotonic()
                if not done and finished is None and time.monotonic() - last_beat > heartbeat_s:
                    last_beat = time.monotonic()
                    yield b": keep-alive\n\n"
        finally:
            waiters.discard(run_id, fut)


def _final(run: Run, chunks_sent: int) -> dict:
    return {
        "success": run.status == "completed", "run_id": run.id, "session_id": run.session_id, "agent_id": run.agent_id,
        "status": run.status, "response": run.response, "error": run.error, "error_type": run.error_type,
        "deltas": run.deltas, "complete": chunks_sent >= run.deltas,
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "total_tokens": run.total_tokens,
                  "cost_usd": run.cost_usd, "latency_ms": run.latency_ms, "ttft_ms": run.ttft_ms},
    }


def _sse(event: str, data: dict, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"
