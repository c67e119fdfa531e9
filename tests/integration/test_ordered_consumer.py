"""The ordered-concurrent consumer against a real Kafka wire protocol (see tests/backends.py)."""

import asyncio
import random
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka.deadletter import send_to_dead_letter
from shared.kafka.ordered_consumer import OrderedConcurrentConsumer, PoisonMessage
from shared.settings import KafkaSettings
from shared.topics import Topic

PARTITIONS = 4


@pytest.fixture
def topic(kafka):
    servers, dev = kafka
    name = f"test.ordered.{uuid.uuid4().hex[:8]}"
    if dev is not None:
        dev.create_topic(name, PARTITIONS)
    return name


@pytest.fixture
def settings(kafka):
    return KafkaSettings(bootstrap_servers=kafka[0], session_timeout_ms=6000, heartbeat_interval_ms=500)


async def produce(settings, topic, messages):
    producer = AIOKafkaProducer(bootstrap_servers=settings.servers, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def committed_positions(settings, topic, group):
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def end_offsets(settings, topic):
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.servers)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def make_consumer(settings, topic, group, handler, producer=None, **kw):
    async def dead_letter(record, exc, attempts):
        await send_to_dead_letter(producer, key=record.key, value=record.value, topic=record.topic,
                                  partition=record.partition, offset=record.offset, error=repr(exc),
                                  attempts=attempts, consumer_group=group)

    return OrderedConcurrentConsumer(topics=[topic], group_id=group, kafka=settings, handler=handler,
                                     dead_letter=dead_letter, retry_backoff_s=0.01, **kw)


async def wait_until(predicate, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


class TestOrderedConcurrentConsumer:
    async def test_runs_keys_concurrently_but_each_key_in_order_and_commits_everything(self, settings, topic):
        keys = [f"session-{i}".encode() for i in range(20)]
        messages = [(k, f"{k.decode()}:{n}".encode()) for n in range(10) for k in keys]
        await produce(settings, topic, messages)
        seen: dict[bytes, list[int]] = {k: [] for k in keys}
        active: dict[bytes, int] = {k: 0 for k in keys}
        concurrency = {"now": 0, "max": 0}
        rng = random.Random(1)

        async def handler(record):
            assert active[record.key] == 0, "two messages of one key ran at once"
            active[record.key] += 1
            concurrency["now"] += 1
            concurrency["max"] = max(concurrency["max"], concurrency["now"])
            await asyncio.sleep(rng.uniform(0, 0.01))
            seen[record.key].append(int(record.value.split(b":")[1]))
            concurrency["now"] -= 1
            active[record.key] -= 1

        group = f"g-{uuid.uuid4().hex[:6]}"
        consumer = make_consumer(settings, topic, group, handler, max_in_flight=64)
        await consumer.start()
        try:
            await wait_until(lambda: consumer.processed == len(messages))
        finally:
            await consumer.stop()
        assert all(order == list(range(10)) for order in seen.values())
        assert 1 < concurrency["max"] <= 64
        assert await committed_positions(settings, topic, group) == await end_offsets(settings, topic)

    async def test_never_holds_more_than_max_in_flight(self, settings, topic):
        await produce(settings, topic, [(f"k{i}".encode(), b"x") for i in range(40)])
        concurrency = {"now": 0, "max": 0}

        async def handler(record):
            concurrency["now"] += 1
            concurrency["max"] = max(concurrency["max"], concurrency["now"])
            await asyncio.sleep(0.02)
            concurrency["now"] -= 1

        consumer = make_consumer(settings, topic, f"g-{uuid.uuid4().hex[:6]}", handler, max_in_flight=5)
        await consumer.start()
        try:
            await wait_until(lambda: consumer.processed == 40)
        finally:
            await consumer.stop()
        assert concurrency["max"] == 5

    async def test_poison_and_exhausted_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on(self, settings, topic):
        producer = AIOKafkaProducer(bootstrap_servers=settings.servers)
        await producer.start()
        key = b"one-key"
        await produce(settings, topic, [(key, b"ok-1"), (key, b"poison"), (key, b"flaky"), (key, b"ok-2")])
        handled: list[bytes] = []
        attempts = {"flaky": 0}

        async def handler(record):
            if record.value == b"poison":
                raise PoisonMessage("cannot decode")
            if record.value == b"flaky":
                attempts["flaky"] += 1
                raise RuntimeError("always fails")
            handled.append(record.value)

        group = f"g-{uuid.uuid4().hex[:6]}"
        dlq = AIOKafkaConsumer(str(Topic.DEAD_LETTER), bootstrap_servers=settings.servers, auto_offset_reset="latest",
                               fetch_max_wait_ms=10)
        await dlq.start()
        await dlq.seek_to_end()
        consumer = make_consumer(settings, topic, group, handler, producer=producer, max_attempts=3)
        await consumer.start()
        try:
            await wait_until(lambda: consumer.processed == 4)
            dead = []
            while len(dead) < 2:
                for records in (await dlq.getmany(timeout_ms=2000)).values():
                    dead.extend(r for r in records if dict(r.headers).get("dlq_original_topic") == topic.encode())
        finally:
            await consumer.stop()
            await dlq.stop()
            await producer.stop()
        assert handled == [b"ok-1", b"ok-2"]
        assert attempts["flaky"] == 3
        by_value = {r.value: dict(r.headers) for r in dead}
        assert by_value[b"poison"]["dlq_attempts"] == b"1"
        assert b"PoisonMessage" in by_value[b"poison"]["dlq_error"]
        assert by_value[b"flaky"]["dlq_attempts"] == b"3"
        assert by_value[b"flaky"]["dlq_consumer_group"] == group.encode()
        assert by_value[b"flaky"]["dlq_original_offset"].isdigit()

    async def test_unfinished_work_is_not_committed_and_is_redelivered_after_a_stop(self, settings, topic):
        await produce(settings, topic, [(b"k", b"fast-1"), (b"k", b"stuck"), (b"k", b"after")])
        release = asyncio.Event()
        first_run: list[bytes] = []

        async def blocking_handler(record):
            first_run.append(record.value)
            if record.value == b"stuck":
                await release.wait()

        group = f"g-{uuid.uuid4().hex[:6]}"
        consumer = make_consumer(settings, topic, group, blocking_handler, drain_timeout_s=0.3)
        await consumer.start()
        await wait_until(lambda: b"stuck" in first_run)
        await consumer.stop()  # "stuck" never finished
        assert first_run == [b"fast-1", b"stuck"]

        second_run: list[bytes] = []

        async def handler(record):
            second_run.append(record.value)

        consumer = make_consumer(settings, topic, group, handler)
        await consumer.start()
        try:
            await wait_until(lambda: consumer.processed == 2)
        finally:
            await consumer.stop()
        assert second_run == [b"stuck", b"after"]
