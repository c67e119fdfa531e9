"""Run commands and run lifecycle events.

``RunRequested`` / ``CancelRun`` are commands (imperative, gateway -> agent-runner); the rest
are facts the agent-runner reports (past tense).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Event
from shared.topics import Topic


class AgentSnapshot(BaseModel):
    """Everything a runner needs to build the agent, so runners need no agent registry.

    ``snapshot_version`` is the schema of this object; ``version`` is the agent definition's
    own revision (bumped by the gateway on every change)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_version: Literal[1] = 1
    id: str
    name: str
    version: int = 1
    description: str = ""
    instructions: str = ""
    model: str = Field(description="`provider:model`, e.g. `scripted:assistant`, `openai:gpt-4o-mini`.")
    tools: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="temperature, max_tokens, ...")


class RunRequested(Event):
    topic = Topic.RUN_COMMANDS
    type: Literal["run.requested.v1"] = "run.requested.v1"
    agent: AgentSnapshot
    message_id: str
    message: str
    context: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime
    stream: bool = False
    deadline_s: float | None = Field(None, description="Wall-clock budget for the run.")


class CancelRun(Event):
    topic = Topic.RUN_CONTROL
    type: Literal["run.cancel.v1"] = "run.cancel.v1"


class RunStarted(Event):
    topic = Topic.RUN_EVENTS
    type: Literal["run.started.v1"] = "run.started.v1"
    queue_wait_ms: float


class RunDelta(Event):
    topic = Topic.RUN_DELTAS
    type: Literal["run.delta.v1"] = "run.delta.v1"
    seq: int = Field(ge=0, description="0, 1, 2 ... per run; lets a stream resume exactly.")
    content: str


class RunUsage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = Field(None, description="From the price table; null when the model has no price.")
    latency_ms: float = 0.0
    ttft_ms: float | None = None


class RunCompleted(Event):
    topic = Topic.RUN_EVENTS
    type: Literal["run.completed.v1"] = "run.completed.v1"
    agent_version: int = 1
    content: str
    model: str
    usage: RunUsage
    deltas: int = Field(0, ge=0, description="How many RunDelta events preceded this one (0 unless streamed).")


class RunFailed(Event):
    topic = Topic.RUN_EVENTS
    type: Literal["run.failed.v1"] = "run.failed.v1"
    agent_version: int = 1
    error: str
    error_type: str = Field(description="agent_error, provider_not_configured, deadline_exceeded, ...")


class RunCancelled(Event):
    topic = Topic.RUN_EVENTS
    type: Literal["run.cancelled.v1"] = "run.cancelled.v1"
    reason: str = "cancelled by user"
