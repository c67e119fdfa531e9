"""Dead-lettering: a message that cannot be processed is copied, untouched, to
``Topic.DEAD_LETTER`` with headers that say where it came from and why, and its partition
moves on. Operators replay or discard it from there.
"""

from __future__ import annotations

from typing import Protocol

from shared.topics import Topic

MAX_ERROR_HEADER = 2_000


class _Producer(Protocol):
    async def send_and_wait(self, topic, value=None, key=None, partition=None, timestamp_ms=None, headers=None): ...


def dead_letter_headers(
    *, topic: str, partition: int, offset: int, error: str, attempts: int, consumer_group: str,
    original_headers: list[tuple[str, bytes]] | None = None,
) -> list[tuple[str, bytes]]:
    headers = [
        ("dlq_original_topic", topic.encode()),
        ("dlq_original_partition", str(partition).encode()),
        ("dlq_original_offset", str(offset).encode()),
        ("dlq_error", error[:MAX_ERROR_HEADER].encode(errors="replace")),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_consumer_group", consumer_group.encode()),
    ]
    # Keep the original headers (event type, correlation id) after ours.
    return headers + [(k, v) for k, v in (original_headers or []) if not k.startswith("dlq_")]


async def send_to_dead_letter(
    producer: _Producer, *, key: bytes | None, value: bytes | None, topic: str, partition: int,
    offset: int, error: str, attempts: int, consumer_group: str,
    original_headers: list[tuple[str, bytes]] | None = None,
) -> None:
    await producer.send_and_wait(
        str(Topic.DEAD_LETTER),
        value=value,
        key=key,
        headers=dead_letter_headers(
            topic=topic, partition=partition, offset=offset, error=error, attempts=attempts,
            consumer_group=consumer_group, original_headers=original_headers,
        ),
    )


async def publish_dead_letter_record(broker, record, *, error: BaseException | str, attempts: int, consumer_group: str) -> None:
    """Dead-letter an aiokafka ``ConsumerRecord`` through a FastStream ``KafkaBroker``."""
    headers = dead_letter_headers(
        topic=record.topic, partition=record.partition, offset=record.offset,
        error=f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error,
        attempts=attempts, consumer_group=consumer_group,
        original_headers=list(record.headers or []),
    )
    await broker.publish(
        record.value or b"",
        topic=str(Topic.DEAD_LETTER),
        key=record.key,
        headers={k: v.decode(errors="replace") for k, v in headers},
    )
