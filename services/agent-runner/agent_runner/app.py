"""agent-runner wiring: a FastStream app whose broker publishes events and listens for
cancels, plus the ordered-concurrent consumer of run commands (shared.kafka)."""

from __future__ import annotations

import logging
import os

from aiokafka import ConsumerRecord
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.specification import AsyncAPI

from agent_runner.agno_db import make_agno_db, make_engine
from agent_runner.executor import RunExecutor
from agent_runner.results import ResultStore
from agent_runner.settings import RunnerSettings
from shared.events import CancelRun, Event, EventDecodeError, RunRequested, decode
from shared.kafka.deadletter import publish_dead_letter_record
from shared.kafka.ordered_consumer import OrderedConcurrentConsumer, PoisonMessage
from shared.kafka.publisher import make_broker, publish_event
from shared.topics import ConsumerGroup, Topic

log = logging.getLogger("agent_runner")

# agno phones home by default and that delays exit by ~2 s (platform-notes).
os.environ.setdefault("AGNO_TELEMETRY", "false")


class Runner:
    def __init__(self, settings: RunnerSettings, broker: KafkaBroker) -> None:
        self.settings = settings
        self.broker = broker
        url = settings.agno_db_url()
        engine = make_engine(url)
        self.results = ResultStore(url, engine=engine)
        agno_db = make_agno_db(url, engine, history_window=settings.history_runs)
        self.executor = RunExecutor(settings, agno_db, self.results, self._publish)
        self.consumer = OrderedConcurrentConsumer(
            topics=[str(Topic.RUN_COMMANDS)],
            group_id=str(ConsumerGroup.AGENT_RUNNER),
            kafka=settings.kafka,
            handler=self.handle,
            dead_letter=self._dead_letter,
            max_in_flight=settings.max_in_flight,
            # Failures that reach the consumer are infrastructure (database, broker), not the
            # model (the executor turns those into RunFailed): retry for ~a minute first.
            max_attempts=8,
            drain_timeout_s=min(settings.run_deadline_s, 30.0),
        )

    async def _publish(self, event: Event) -> None:
        await publish_event(self.broker, event)

    async def _dead_letter(self, record: ConsumerRecord, error: BaseException, attempts: int) -> None:
        log.error("dead-lettering %s:%s@%s: %s", record.topic, record.partition, record.offset, error)
        await publish_dead_letter_record(self.broker, record, error=error, attempts=attempts,
                                         consumer_group=str(ConsumerGroup.AGENT_RUNNER))

    async def handle(self, record: ConsumerRecord) -> None:
        try:
            event = decode(record.value or b"")
        except EventDecodeError as exc:
            raise PoisonMessage(f"undecodable run command: {exc}") from exc
        if not isinstance(event, RunRequested):
            raise PoisonMessage(f"unexpected event type {event.type!r} on {record.topic}")
        await self.executor.execute(event)

    async def start(self) -> None:
        await self.results.create()
        await self.consumer.start()
        log.info("agent-runner consuming %s (max %d runs in flight)", Topic.RUN_COMMANDS, self.settings.max_in_flight)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.results.close()


def create_app(settings: RunnerSettings | None = None) -> FastStream:
    settings = settings or RunnerSettings()
    broker = make_broker(settings.kafka, client_id="agent-runner", graceful_timeout=5.0)
    runner = Runner(settings, broker)

    # Every runner instance hears every cancel (no consumer group): whoever runs it stops it.
    @broker.subscriber(str(Topic.RUN_CONTROL), auto_offset_reset="latest",
                       fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
                       description="CancelRun commands; each runner cancels the runs it holds.")
    async def on_control(message: KafkaMessage) -> None:
        try:
            event = decode(message.body)
        except EventDecodeError:
            log.warning("ignoring undecodable control message")
            return
        if isinstance(event, CancelRun) and event.run_id:
            hit = runner.executor.registry.request_cancel(event.run_id)
            log.info("cancel %s (%s)", event.run_id, "in flight here" if hit else "remembered")

    app = FastStream(broker, specification=AsyncAPI(
        broker, title="AgentOS agent-runner", version="0.1.0",
        description="Executes agno agents for RunRequested commands and reports run events."))
    app.after_startup(runner.start)
    app.on_shutdown(runner.stop)
    app.runner = runner  # type: ignore[attr-defined]  (tests reach in)
    return app
