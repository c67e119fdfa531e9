"""Usage accounting (topic ``agentos.usage.v1``; agent-runner -> metrics)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.envelope import Event
from shared.topics import Topic


class UsageRecorded(Event):
    """One per finished run (completed, failed or cancelled): what it cost and how fast it was."""

    topic = Topic.USAGE
    type: Literal["usage.recorded.v1"] = "usage.recorded.v1"
    agent_version: int = 1
    provider: str
    model: str
    status: Literal["completed", "failed", "cancelled"]
    error_type: str | None = None
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0)
    reasoning_tokens: int = Field(0, ge=0)
    cost_usd: float | None = Field(None, description="null = no price known for this model (never guessed)")
    price_version: str | None = None
    latency_ms: float = Field(0.0, ge=0)
    ttft_ms: float | None = None
    queue_wait_ms: float | None = None
    tool_calls: int = 0
    model_turns: int = 0
