"""Request and response bodies of the public API (shapes from the seed documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.db.models import Agent
from gateway.validation import StrictBody

MAX_ID = 64


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt.tzinfo is None or dt.utcoffset().total_seconds() == 0 else dt.isoformat()


class Strict(StrictBody):
    pass


class AgentOut(BaseModel):
    id: str
    name: str
    description: str
    model: str
    tools: list[str]
    capabilities: list[str]

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        return cls(id=agent.id, name=agent.name, description=agent.description, model=agent.model,
                   tools=list(agent.tools or []), capabilities=list(agent.capabilities or []))


class AgentsOut(BaseModel):
    agents: list[AgentOut]


class CreateSessionIn(Strict):
    agent_id: str = Field(min_length=1, max_length=MAX_ID)
    title: str = Field("New Chat", max_length=200)

    @field_validator("title")
    @classmethod
    def _default_title(cls, value: str) -> str:
        return value or "New Chat"


class CreateSessionOut(BaseModel):
    success: Literal[True] = True
    session_id: str


class SendMessageIn(Strict):
    agent_id: str = Field(min_length=1, max_length=MAX_ID)
    session_id: str = Field(min_length=1, max_length=MAX_ID)
    message: str = Field(min_length=1, max_length=32_000)
    context: dict[str, Any] = Field(default_factory=dict)


class SendMessageOut(BaseModel):
    success: bool
    response: str | None
    session_id: str
    agent_id: str
    timestamp: str
    run_id: str
    error: str | None = None
    error_type: str | None = None


class RunAccepted(BaseModel):
    success: Literal[True] = True
    run_id: str
    status: str
    session_id: str
    agent_id: str
    poll_url: str
    stream_url: str


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None
    latency_ms: float | None
    ttft_ms: float | None


class RunOut(BaseModel):
    success: Literal[True] = True
    run_id: str
    session_id: str
    agent_id: str
    agent_version: int
    status: str
    response: str | None
    error: str | None
    error_type: str | None
    usage: UsageOut
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class SessionOut(BaseModel):
    id: str
    title: str
    agent_name: str
    agent_id: str
    created_at: str
    updated_at: str


class SessionsOut(BaseModel):
    sessions: list[SessionOut]
    page: int
    total_pages: int
    total_sessions: int


class MessageOut(BaseModel):
    id: str
    role: str
    content: str
    run_id: str
    created_at: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None


class SessionDetailOut(SessionOut):
    success: Literal[True] = True
    messages: list[MessageOut]


class RenameSessionIn(Strict):
    title: str = Field(min_length=1, max_length=200)


class InfoOut(BaseModel):
    id: str
    description: str
    agents_count: int
    available_agents: list[AgentOut]
