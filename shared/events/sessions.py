"""Session lifecycle events (topic ``agentos.sessions.v1``; gateway -> metrics)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.envelope import Event
from shared.topics import Topic


class SessionCreated(Event):
    topic = Topic.SESSIONS
    type: Literal["session.created.v1"] = "session.created.v1"
    agent_name: str
    title: str = Field(max_length=200)


class SessionDeleted(Event):
    topic = Topic.SESSIONS
    type: Literal["session.deleted.v1"] = "session.deleted.v1"
