"""The envelope every AgentOS event carries.

Every event is one flat JSON object: the envelope fields below plus the fields of its own
type. ``type`` names the event and its schema version (``run.completed.v1``); a consumer that
meets a version it does not know dead-letters the message instead of guessing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event. Subclasses fix ``type`` with a ``Literal``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Kafka topic this event type is published to (set by each subclass).
    topic: ClassVar[str]

    event_id: str = Field(default_factory=new_id, description="Unique id; consumers deduplicate on it.")
    type: str = Field(description="Event name and schema version, e.g. `run.completed.v1`.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When the fact happened (UTC).")
    correlation_id: str = Field(description="Ties together everything one client request caused.")
    user_id: str = Field(description="The user on whose behalf this happened.")
    agent_id: str | None = None
    session_id: str | None = None
    run_id: str | None = None

    @property
    def key(self) -> bytes | None:
        """Kafka key: the session, so one session's events stay in order on one partition."""
        return self.session_id.encode() if self.session_id else None

    def headers(self) -> dict[str, str]:
        """Kafka headers duplicate the routing fields so tools can filter without decoding."""
        return {
            "event_type": self.type,
            "event_id": self.event_id,
            "correlation_id": self.correlation_id,
        }
