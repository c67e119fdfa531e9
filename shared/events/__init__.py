"""Event contracts: the only definition of what travels over Kafka.

``decode(bytes)`` turns a message value back into its typed event; unknown types and invalid
payloads raise ``EventDecodeError`` so consumers can dead-letter them.
"""

from __future__ import annotations

from typing import Annotated, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from shared.events.envelope import Event, new_id, utcnow
from shared.events.runs import (
    AgentSnapshot,
    CancelRun,
    RunCancelled,
    RunCompleted,
    RunDelta,
    RunFailed,
    RunRequested,
    RunStarted,
    RunUsage,
)
from shared.events.sessions import SessionCreated, SessionDeleted
from shared.events.usage import UsageRecorded

EVENT_TYPES: tuple[type[Event], ...] = (
    SessionCreated,
    SessionDeleted,
    RunRequested,
    CancelRun,
    RunStarted,
    RunDelta,
    RunCompleted,
    RunFailed,
    RunCancelled,
    UsageRecorded,
)

AnyEvent = Annotated[Union[EVENT_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]
_adapter: TypeAdapter[Event] = TypeAdapter(AnyEvent)

#: Terminal run events: after one of these a run never changes again.
TERMINAL_RUN_EVENTS = (RunCompleted, RunFailed, RunCancelled)


class EventDecodeError(ValueError):
    """The bytes are not a valid event of a known type and version."""


def encode(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode(raw: bytes | str) -> Event:
    try:
        return _adapter.validate_json(raw)
    except ValidationError as exc:
        raise EventDecodeError(str(exc)) from exc


__all__ = [
    "AgentSnapshot",
    "AnyEvent",
    "CancelRun",
    "EVENT_TYPES",
    "Event",
    "EventDecodeError",
    "RunCancelled",
    "RunCompleted",
    "RunDelta",
    "RunFailed",
    "RunRequested",
    "RunStarted",
    "RunUsage",
    "SessionCreated",
    "SessionDeleted",
    "TERMINAL_RUN_EVENTS",
    "UsageRecorded",
    "decode",
    "encode",
    "new_id",
    "utcnow",
]
