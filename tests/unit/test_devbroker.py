"""The embedded development broker (librdkafka mock cluster) over real TCP with aiokafka."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import murmur2

from shared.kafka.devbroker import (
    DevBrokerError,
    DevKafkaBroker,
    find_librdkafka,
    start_devbroker_process,
)
from shared.topics import DEFAULT_PARTITIONS, ConsumerGroup, Topic, all_topics

pytestmark = pytest.mark.timeout(30)

# After the last member leaves, the mock keeps the group "Joining" for session_timeout - 1000
# ms and a new member waits for that: keep it small (3000 -> 2 s).
CONSUMER_KW = dict(
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    session_timeout_ms=3000,
    heartbeat_interval_ms=500,
    fetch_max_wait_ms=10,
)


@pytest.fixture(scope="module")
def broker() -> Iterator[DevKafkaBroker]:
    with DevKafkaBroker() as b:
        yield b


async def _collect(consumer: AIOKafkaConsumer, n: int, timeout: float = 15) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []

    async def loop() -> None:
        while len(out) < n:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)

    await asyncio.wait_for(loop(), timeout)
    return out


def _expected_partition(key: bytes, partitions: int) -> int:
    # Java/aiokafka default partitioner: murmur2(key) positive, modulo partition count.
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------------------------
# In-process broker
# --------------------------------------------------------------------------------------------


def test_find_librdkafka_in_wheel() -> None:
    path = find_librdkafka()
    assert path.is_file() and path.name.startswith("librdkafka")


def test_find_librdkafka_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOS_LIBRDKAFKA", "/nonexistent/librdkafka.so")
    with pytest.raises(DevBrokerError, match="AGENTOS_LIBRDKAFKA"):
        find_librdkafka()


def test_lifecycle_and_validation() -> None:
    b = DevKafkaBroker(brokers=3, partitions=2, topics=["a"])
    with pytest.raises(DevBrokerError):
        _ = b.bootstrap_servers
    with b:
        servers = b.bootstrap_servers.split(",")
        assert len(servers) == 3 and all(s.startswith("127.0.0.1:") for s in servers)
        assert b.create_topic("b", 3) is True
        assert b.create_topic("b", 3, exist_ok=True) is False
        with pytest.raises(DevBrokerError, match="already exists"):
            b.create_topic("a", 2)
        with pytest.raises(ValueError):
            b.create_topic("c", 0)
        with pytest.raises(ValueError):
            b.create_topic("", 1)
        with pytest.raises(DevBrokerError):
            b.set_broker_down(9)
    assert not b.running
    b.stop()  # idempotent


async def test_topics_precreated(broker: DevKafkaBroker) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        for topic in all_topics():
            # The mock has no CreateTopics: an unknown topic would auto-create with 4.
            parts = await asyncio.wait_for(producer.partitions_for(topic), 10)
            assert parts == set(range(DEFAULT_PARTITIONS)), topic
    finally:
        await producer.stop()


async def test_round_trip_keys_headers_partitions_and_committed_offsets(
    broker: DevKafkaBroker,
) -> None:
    topic = Topic.RUN_COMMANDS.value
    group = f"{ConsumerGroup.AGENT_RUNNER.value}.test-roundtrip"
    keys = [f"session-{i}".encode() for i in range(5)]
    sent: dict[tuple[int, int], tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]] = {}
    partition_of: dict[bytes, int] = {}

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:

        async def send(i: int) -> None:
            key = keys[i % len(keys)]
            value = f"command-{i}".encode()
            headers = (("event-type", b"RunRequested"), ("seq", str(i).encode()))
            md = await producer.send_and_wait(topic, value, key=key, headers=list(headers))
            # Same key -> same partition, and the one every Java-compatible client picks.
            assert partition_of.setdefault(key, md.partition) == md.partition
            assert md.partition == _expected_partition(key, DEFAULT_PARTITIONS)
            sent[(md.partition, md.offset)] = (key, value, headers)

        for i in range(20):
            await send(i)

        # First member of the group: everything from the beginning, then commit.
        c1 = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap_servers, group_id=group, **CONSUMER_KW
        )
        await c1.start()
        try:
            got = await _collect(c1, 20)
            assert len(got) == 20
            for r in got:
                key, value, headers = sent[(r.partition, r.offset)]
                assert (r.key, r.value, tuple(r.headers)) == (key, value, headers)
                assert partition_of[r.key] == r.partition
            # Per key (= per partition) order is the send order.
            for key in keys:
                seqs = [int(dict(r.headers)["seq"]) for r in got if r.key == key]
                assert seqs == sorted(seqs) and len(seqs) == 4
            await c1.commit()
        finally:
            await c1.stop()

        for i in range(20, 25):
            await send(i)

        # Next member of the same group (the first one is gone): only the new messages.
        c2 = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap_servers, group_id=group, **CONSUMER_KW
        )
        await c2.start()
        try:
            got2 = await _collect(c2, 5)
            extra = await c2.getmany(timeout_ms=300)
            got2 += [r for records in extra.values() for r in records]
            assert sorted(int(dict(r.headers)["seq"]) for r in got2) == list(range(20, 25))
            for r in got2:
                assert (r.key, r.value) == sent[(r.partition, r.offset)][:2]
            # Committed offsets survived the first member and match what it had read.
            for key in keys[:5]:
                tp = TopicPartition(topic, partition_of[key])
                first_read = [r.offset for r in got if r.partition == tp.partition]
                assert await c2.committed(tp) == max(first_read) + 1
        finally:
            await c2.stop()
    finally:
        await producer.stop()


async def test_broker_down_and_up(broker: DevKafkaBroker) -> None:
    topic = Topic.DEAD_LETTER.value
    port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before", key=b"k")
        broker.set_broker_down(1)
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
        pending = asyncio.ensure_future(producer.send_and_wait(topic, b"during", key=b"k"))
        await asyncio.sleep(0.5)
        assert not pending.done()
        broker.set_broker_up(1)  # same port again
        md = await asyncio.wait_for(pending, 15)
        assert md.offset == 1
    finally:
        await producer.stop()


# --------------------------------------------------------------------------------------------
# As its own process
# --------------------------------------------------------------------------------------------


async def test_subprocess_round_trip_and_clean_sigterm(tmp_path) -> None:
    bootstrap_file = tmp_path / "kafka.bootstrap"
    t0 = time.monotonic()
    proc, servers = start_devbroker_process(bootstrap_file=bootstrap_file, timeout=20)
    try:
        assert time.monotonic() - t0 < 20
        assert servers.startswith("127.0.0.1:")
        assert bootstrap_file.read_text().strip() == servers

        topic = Topic.RUN_EVENTS.value
        producer = AIOKafkaProducer(bootstrap_servers=servers)
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=servers, group_id=ConsumerGroup.METRICS.value, **CONSUMER_KW
        )
        await producer.start()
        await consumer.start()
        try:
            await producer.send_and_wait(
                topic, b'{"type":"RunCompleted"}', key=b"s1", headers=[("h", b"1")]
            )
            (record,) = await _collect(consumer, 1)
            assert (record.key, record.value, record.headers) == (
                b"s1",
                b'{"type":"RunCompleted"}',
                (("h", b"1"),),
            )
        finally:
            await consumer.stop()
            await producer.stop()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not bootstrap_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_subprocess_failure_is_reported() -> None:
    with pytest.raises(DevBrokerError, match="exited with code"):
        start_devbroker_process(brokers=0, timeout=20, stderr=subprocess.DEVNULL)
