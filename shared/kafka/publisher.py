"""Publishing events: one function so key, headers and encoding are always the same."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.events import Event, encode
from shared.settings import KafkaSettings


def make_broker(settings: KafkaSettings, *, client_id: str, **kwargs) -> KafkaBroker:
    """A FastStream broker with the producer settings every service uses.

    ``acks="all"``: an event is only "published" once every in-sync replica has it.
    ``request_timeout_ms`` bounds how long a publish may hang when Kafka is down, so the
    gateway can answer 503 quickly instead of holding the client.
    """
    return KafkaBroker(
        settings.servers,
        client_id=f"{settings.client_id_prefix}-{client_id}",
        acks="all",
        request_timeout_ms=settings.request_timeout_ms,
        linger_ms=kwargs.pop("linger_ms", 0),
        # TLS / SASL from KAFKA_SECURITY_PROTOCOL & co.; None (PLAINTEXT) = as before.
        security=settings.faststream_security(),
        **kwargs,
    )


async def publish_event(broker: KafkaBroker, event: Event) -> None:
    await broker.publish(
        encode(event),
        topic=str(event.topic),
        key=event.key,
        headers=event.headers(),
        correlation_id=event.correlation_id,
    )
