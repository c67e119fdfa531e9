"""The metrics consumer over the real Kafka wire protocol (see tests/backends.py) into the real
ClickHouse engine (chdb): batches, dead-lettering, commit-after-insert, crash and shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from clickhouse_connect.driver.exceptions import OperationalError
from metrics.consumer import MetricsConsumer
from metrics.rows import TABLES, rows_by_table
from metrics.settings import MetricsSettings
from metrics.testing import generate_events
from metrics.writer import MetricsWriter, RetryPolicy

from shared.events import encode
from shared.settings import KafkaSettings
from shared.topics import Topic

PARTITIONS = 4
CONSUMED = (Topic.SESSIONS, Topic.RUN_COMMANDS, Topic.RUN_EVENTS, Topic.USAGE)
EVENTS = generate_events(seed=23, sessions=25, start=datetime(2026, 1, 1, tzinfo=UTC), span=timedelta(hours=20))


@pytest.fixture
def topics(kafka):
    """Per-test copies of the four topics metrics reads (the broker is shared by the session)."""
    _, dev = kafka
    prefix = f"test.metrics.{uuid.uuid4().hex[:8]}"
    names = {topic: f"{prefix}.{topic.value}" for topic in CONSUMED}
    if dev is not None:
        for name in names.values():
            dev.create_topic(name, PARTITIONS)
    return names


@pytest.fixture
def settings(kafka):
    return MetricsSettings(
        kafka=KafkaSettings(bootstrap_servers=kafka[0], session_timeout_ms=2000, heartbeat_interval_ms=300),
        consumer_group=f"test-metrics-{uuid.uuid4().hex[:8]}",
        batch_max_records=200,
        batch_max_wait_ms=50,
        retry_initial_backoff_ms=10,
        retry_max_backoff_ms=100,
    )


async def publish(settings, topics, events, *, garbage: list[bytes] = ()) -> int:
    """Send the events metrics reads (keyed by session) and ``garbage`` to the usage topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.servers, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    try:
        futures = []
        for event in events:
            topic = topics.get(Topic(event.topic))
            if topic is None:
                continue
            headers = [(k, v.encode()) for k, v in event.headers().items()]
            futures.append(await producer.send(topic, encode(event), key=event.key, headers=headers))
            sent += 1
        for value in garbage:
            futures.append(await producer.send(topics[Topic.USAGE], value, key=b"junk",
                                               headers=[("event_type", b"usage.recorded.v1")]))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def committed_and_end(settings, topics) -> tuple[dict, dict]:
    tps = [TopicPartition(name, p) for name in topics.values() for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=settings.consumer_group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        committed = {tp: await consumer.committed(tp) for tp in tps}
        ends = await consumer.end_offsets(tps)
        return committed, {tp: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def assert_all_committed(settings, topics) -> None:
    committed, ends = await committed_and_end(settings, topics)
    assert {tp: committed[tp] or 0 for tp in ends} == ends


def raw_counts(client, db) -> dict[str, int]:
    return {t: client.query(f"SELECT count() FROM {db}.{t}").result_rows[0][0] for t in TABLES}


def expected_counts(events) -> dict[str, int]:
    grouped = rows_by_table(events)
    return {t: len(grouped.get(t, ())) for t in TABLES}


async def eventually(check, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval)


def assert_aggregates(client, db, events) -> None:
    from shared.events import RunCompleted, RunRequested, SessionCreated, UsageRecorded

    want = (
        sum(isinstance(e, SessionCreated) for e in events),
        sum(isinstance(e, RunRequested | RunCompleted) for e in events),
        sum(isinstance(e, UsageRecorded) for e in events),
    )
    for grain in ("metrics_hourly", "metrics_daily"):
        got = client.query(
            f"SELECT sum(sessions), sum(user_messages) + sum(assistant_messages), sum(runs) FROM {db}.{grain}"
        ).result_rows[0]
        assert got == want, grain


async def dead_letters_from(settings, source_topic: str, expected: int) -> list:
    # No group: every partition of the topic, from the beginning.
    consumer = AIOKafkaConsumer(str(Topic.DEAD_LETTER), bootstrap_servers=settings.kafka.servers,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found, deadline = [], time.monotonic() + 10
        while len(found) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found += [r for r in records if dict(r.headers).get("dlq_original_topic") == source_topic.encode()]
        return found
    finally:
        await consumer.stop()


class TestConsumption:
    async def test_stores_every_event_once_dead_letters_garbage_and_commits_everything(
        self, settings, topics, ch_client, metrics_db
    ):
        await publish(settings, topics, EVENTS, garbage=[b"not json", b'{"type": "usage.recorded.v9"}'])
        consumer = MetricsConsumer(settings, MetricsWriter(ch_client, metrics_db), topics=list(topics.values()))
        consumer.start()
        try:
            await eventually(lambda: _equal(raw_counts(ch_client, metrics_db), expected_counts(EVENTS)))
            await eventually(lambda: _equal(consumer.stats.dead_lettered, 2))
        finally:
            await consumer.close()
        assert_aggregates(ch_client, metrics_db, EVENTS)
        assert consumer.stats.ignored == sum(type(e).__name__ == "RunStarted" for e in EVENTS)
        await assert_all_committed(settings, topics)

        dead = await dead_letters_from(settings, topics[Topic.USAGE], 2)
        assert sorted(r.value for r in dead) == sorted([b"not json", b'{"type": "usage.recorded.v9"}'])
        headers = dict(dead[0].headers)
        assert headers["dlq_consumer_group"] == settings.consumer_group.encode()
        assert headers["dlq_error"].startswith(b"undecodable event")
        assert headers["event_type"] == b"usage.recorded.v1"  # original headers kept
        assert {"dlq_original_partition", "dlq_original_offset", "dlq_attempts"} <= set(headers)

    async def test_nothing_is_committed_while_clickhouse_fails_and_all_lands_once_after(
        self, settings, topics, ch_client, metrics_db
    ):
        healthy = threading.Event()
        flaky = _GatedClient(ch_client, healthy)
        consumer = MetricsConsumer(settings, MetricsWriter(flaky, metrics_db, retry=RetryPolicy(0.01, 0.05)),
                                   topics=list(topics.values()))
        await publish(settings, topics, EVENTS)
        consumer.start()
        try:
            await eventually(lambda: _at_least(flaky.failures, 5))
            committed, _ = await committed_and_end(settings, topics)
            assert set(committed.values()) == {None}
            assert raw_counts(ch_client, metrics_db) == dict.fromkeys(TABLES, 0)
            healthy.set()
            await eventually(lambda: _equal(raw_counts(ch_client, metrics_db), expected_counts(EVENTS)))
            await eventually(lambda: _at_least(consumer.stats.commits, 1))
        finally:
            await consumer.close()
        assert_aggregates(ch_client, metrics_db, EVENTS)
        await assert_all_committed(settings, topics)

    async def test_a_crash_between_insert_and_commit_is_redelivered_and_counted_once(
        self, settings, topics, ch_client, metrics_db
    ):
        await publish(settings, topics, EVENTS)
        crashed = asyncio.Event()

        class CrashesBeforeCommit(MetricsConsumer):
            async def _commit(self, positions):
                crashed.set()
                await asyncio.Event().wait()  # the process "dies" here

        writer = MetricsWriter(ch_client, metrics_db)
        first = CrashesBeforeCommit(settings, writer, topics=list(topics.values()))
        task = first.start()
        await asyncio.wait_for(crashed.wait(), 20)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stored_before_crash = sum(raw_counts(ch_client, metrics_db).values())
        assert stored_before_crash > 0
        committed, _ = await committed_and_end(settings, topics)
        assert set(committed.values()) == {None}

        second = MetricsConsumer(settings, writer, topics=list(topics.values()))
        second.start()
        try:
            await eventually(lambda: _equal(raw_counts(ch_client, metrics_db), expected_counts(EVENTS)))
            await eventually(lambda: _at_least(second.stats.commits, 1))
        finally:
            await second.close()
        assert writer.stats.duplicate_rows >= stored_before_crash  # really redelivered
        assert_aggregates(ch_client, metrics_db, EVENTS)
        await assert_all_committed(settings, topics)

    async def test_shutdown_flushes_the_pending_batch_and_commits_it(self, settings, topics, ch_client, metrics_db):
        patient = settings.model_copy(update={"batch_max_wait_ms": 60_000, "batch_max_records": 100_000})
        sent = await publish(settings, topics, EVENTS)
        consumer = MetricsConsumer(patient, MetricsWriter(ch_client, metrics_db), topics=list(topics.values()))
        consumer.start()
        await eventually(lambda: _equal(consumer.stats.records, sent))
        assert sum(raw_counts(ch_client, metrics_db).values()) == 0  # still buffered
        await consumer.close()
        assert raw_counts(ch_client, metrics_db) == expected_counts(EVENTS)
        await assert_all_committed(settings, topics)


class _GatedClient:
    """Inserts fail (before writing) until ``healthy`` is set."""

    def __init__(self, client, healthy: threading.Event) -> None:
        self._client, self._healthy = client, healthy
        self.failures = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def insert(self, *args, **kwargs):
        if not self._healthy.is_set():
            self.failures += 1
            raise OperationalError("injected: ClickHouse is down")
        return self._client.insert(*args, **kwargs)


def _equal(actual, expected):
    assert actual == expected
    return actual


def _at_least(actual, minimum):
    assert actual >= minimum
    return actual
