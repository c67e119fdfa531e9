"""Submitting runs and waiting for them.

Write path of a message: store the user message and a ``queued`` run (committed), publish
``RunRequested`` (key = session id, so a session's runs execute in order), and if Kafka cannot
take it within ``publish_timeout_s``, delete both again and answer 503 — nothing half-written.
The projector (``gateway.projector``) moves runs through their statuses from the run events
and wakes the requests waiting here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth import Principal
from gateway.db.models import Agent, ChatSession, Message, Run
from gateway.errors import ServiceUnavailable
from shared.events import AgentSnapshot, CancelRun, Event, RunRequested, new_id
from shared.kafka.publisher import publish_event

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: After a wake finds the run not yet committed as terminal, read it again this soon (doubling).
WAKE_RECHECK_S = 0.05


def snapshot(agent: Agent) -> AgentSnapshot:
    return AgentSnapshot(id=agent.id, name=agent.name, version=agent.version, description=agent.description,
                         instructions=agent.instructions, model=agent.model, tools=list(agent.tools or []),
                         capabilities=list(agent.capabilities or []), options=dict(agent.options or {}))


class RunWaiters:
    """In-process futures keyed by run id, resolved when a run reaches a terminal status."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future]] = defaultdict(list)

    def future(self, run_id: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiting[run_id].append(fut)
        return fut

    def discard(self, run_id: str, fut: asyncio.Future) -> None:
        futures = self._waiting.get(run_id)
        if futures and fut in futures:
            futures.remove(fut)
            if not futures:
                del self._waiting[run_id]

    def is_waiting(self, run_id: str) -> bool:
        return run_id in self._waiting

    def resolve(self, run_id: str, status: str) -> None:
        for fut in self._waiting.pop(run_id, []):
            if not fut.done():
                fut.set_result(status)


class RunService:
    def __init__(self, sessionmaker: async_sessionmaker, broker: KafkaBroker, *, publish_timeout_s: float,
                 poll_interval_s: float = 5.0) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.publish_timeout_s = publish_timeout_s
        self.poll_interval_s = poll_interval_s
        self.waiters = RunWaiters()

    async def publish(self, event: Event) -> None:
        try:
            await asyncio.wait_for(publish_event(self.broker, event), timeout=self.publish_timeout_s)
        except Exception as exc:  # timeout, connection refused, broker not started...
            log.warning("publish of %s failed: %r", event.type, exc)
            raise ServiceUnavailable("Message broker unavailable; nothing was sent. Retry later.",
                                     headers={"Retry-After": "5"}) from exc

    async def find_idempotent(self, db: AsyncSession, user: Principal, key: str) -> Run | None:
        return (await db.execute(select(Run).where(Run.user_id == user.id, Run.idempotency_key == key))).scalar_one_or_none()

    async def submit(self, db: AsyncSession, *, user: Principal, agent: Agent, session: ChatSession, message: str,
                     context: dict[str, Any], mode: str, idempotency_key: str | None, stream: bool,
                     correlation_id: str) -> tuple[Run, bool]:
        """Returns (run, created). An ``Idempotency-Key`` seen before returns the earlier run."""
        if idempotency_key:
            existing = await self.find_idempotent(db, user, idempotency_key)
            if existing is not None:
                return existing, False
        now = datetime.now(UTC)
        run = Run(id="run_" + new_id(), session_id=session.id, user_id=user.id, agent_id=agent.id,
                  agent_version=agent.version, correlation_id=correlation_id, idempotency_key=idempotency_key,
                  mode=mode, status="queued", model=agent.model, created_at=now)
        user_message = Message(id="msg_" + new_id(), session_id=session.id, run_id=run.id, role="user",
                               content=message, context=context or None, created_at=now)
        session.updated_at = now
        db.add_all([run, user_message])
        try:
            await db.commit()
        except IntegrityError:
            # Two retries with the same Idempotency-Key raced: the other one won.
            await db.rollback()
            existing = await self.find_idempotent(db, user, idempotency_key or "")
            if existing is None:
                raise
            return existing, False
        request = RunRequested(correlation_id=correlation_id, user_id=str(user.id), agent_id=agent.id,
                               session_id=session.id, run_id=run.id, agent=snapshot(agent), message_id=user_message.id,
                               message=message, context=context, requested_at=now, stream=stream)
        try:
            await self.publish(request)
        except ServiceUnavailable:
            await db.execute(delete(Message).where(Message.id == user_message.id))
            await db.execute(delete(Run).where(Run.id == run.id))
            await db.commit()
            raise
        return run, True

    async def cancel(self, run: Run, user: Principal) -> None:
        await self.publish(CancelRun(correlation_id=run.correlation_id, user_id=str(user.id), agent_id=run.agent_id,
                                     session_id=run.session_id, run_id=run.id))

    async def wait(self, run_id: str, timeout_s: float) -> Run | None:
        """Wait until the run is terminal; None on timeout.

        Woken when a replica projected the run (``gateway.finish_watch``: any replica; the local
        projector: after its commit). A wake can come before the projecting replica committed,
        so the run is then re-read after 50, 100, 200 ... ms. ``poll_interval_s`` is only the
        safety net for a missed wake."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        fut = self.waiters.future(run_id)
        recheck_s: float | None = None
        try:
            while True:
                async with self.sessionmaker() as db:
                    run = await db.get(Run, run_id)
                    if run is not None and run.status in TERMINAL:
                        return run
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(asyncio.shield(fut), timeout=min(remaining, recheck_s or self.poll_interval_s))
                except TimeoutError:
                    if recheck_s is not None:
                        recheck_s = min(recheck_s * 2, self.poll_interval_s)
                    continue
                recheck_s = WAKE_RECHECK_S
                fut = self.waiters.future(run_id)
        finally:
            self.waiters.discard(run_id, fut)
