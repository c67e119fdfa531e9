"""Keeps the gateway's read model (runs, assistant messages) current from the run events and
wakes waiting requests.

Consumer group ``agentos.gateway-projector``; offsets are committed after the database
commit (at-least-once), and every write is idempotent: a status only moves forward, and the
assistant message has a primary key derived from the run id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.consuming import ConsumerTask
from gateway.db.models import Message, Run
from gateway.runs import TERMINAL, RunWaiters
from shared.events import EventDecodeError, RunCancelled, RunCompleted, RunFailed, RunStarted, decode
from shared.settings import KafkaSettings
from shared.topics import ConsumerGroup, Topic

log = logging.getLogger(__name__)


class RunProjector(ConsumerTask):
    def __init__(self, kafka: KafkaSettings, sessionmaker: async_sessionmaker, waiters: RunWaiters,
                 group_id: str = str(ConsumerGroup.GATEWAY_PROJECTOR)) -> None:
        self.kafka = kafka
        self.sessionmaker = sessionmaker
        self.waiters = waiters
        self.group_id = group_id

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            str(Topic.RUN_EVENTS), bootstrap_servers=self.kafka.servers, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            session_timeout_ms=self.kafka.session_timeout_ms, heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            request_timeout_ms=max(self.kafka.request_timeout_ms, self.kafka.session_timeout_ms + 5000),
            **self.kafka.aiokafka_security_kwargs(),  # TLS / SASL (KAFKA_SECURITY_PROTOCOL)
        )
        await self._launch(consumer, self._loop, "gateway-projector")

    async def _loop(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
                if not batches:
                    continue
                events = []
                for records in batches.values():
                    for record in records:
                        try:
                            events.append(decode(record.value or b""))
                        except EventDecodeError:
                            log.warning("skipping undecodable run event at %s:%s@%s", record.topic, record.partition, record.offset)
                resolved = await self.apply(events)
                await self._consumer.commit()
                for run_id, status in resolved:
                    self.waiters.resolve(run_id, status)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not committed: the same events come again after the seek below.
                log.exception("projecting run events failed; retrying")
                for tp in self._consumer.assignment():
                    committed = await self._consumer.committed(tp)
                    if committed is not None:
                        self._consumer.seek(tp, committed)
                    else:
                        await self._consumer.seek_to_beginning(tp)
                await asyncio.sleep(0.5)

    async def apply(self, events: list) -> list[tuple[str, str]]:
        resolved: list[tuple[str, str]] = []
        async with self.sessionmaker() as db:
            events = [e for e in events if isinstance(e, (RunStarted, RunCompleted, RunFailed, RunCancelled)) and e.run_id]
            # One read for the batch (the identity map then serves every event of a run).
            ids = {e.run_id for e in events}
            runs = {r.id: r for r in (await db.execute(select(Run).where(Run.id.in_(ids)))).scalars()} if ids else {}
            for event in events:
                run = runs.get(event.run_id)
                if run is None or run.status in TERMINAL:
                    continue  # unknown (deleted session) or already final: idempotent no-op
                if isinstance(event, RunStarted):
                    run.status = "running"
                    run.started_at = event.occurred_at
                    continue
                run.finished_at = event.occurred_at or datetime.now(UTC)
                if isinstance(event, RunCompleted):
                    run.status = "completed"
                    run.response = event.content
                    u = event.usage
                    run.input_tokens, run.output_tokens, run.total_tokens = u.input_tokens, u.output_tokens, u.total_tokens
                    run.cost_usd, run.latency_ms, run.ttft_ms = u.cost_usd, u.latency_ms, u.ttft_ms
                    run.deltas = event.deltas
                    message_id = "msg_a_" + run.id
                    exists = (await db.execute(select(Message.id).where(Message.id == message_id))).first()
                    if exists is None:
                        db.add(Message(id=message_id, session_id=run.session_id, run_id=run.id, role="assistant",
                                       content=event.content, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                                       latency_ms=u.latency_ms, created_at=event.occurred_at))
                elif isinstance(event, RunFailed):
                    run.status, run.error, run.error_type = "failed", event.error, event.error_type
                else:
                    run.status, run.error, run.error_type = "cancelled", event.reason, "cancelled"
                resolved.append((run.id, run.status))
            await db.commit()
        return resolved
