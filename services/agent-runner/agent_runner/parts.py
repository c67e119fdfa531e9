"""The agno pieces that every run of one agent definition shares: its model and its tools.

They are built once per definition, not per run, mainly so an OpenAI/Anthropic model keeps its
HTTP client (and connection pool) across runs instead of opening a new one each time. Sharing
is safe: agno keeps no per-run state on a ``Model`` (messages, tools and response format are
arguments of each call; the provider client is created once and reused by design, and agno's
own ``Agent.deep_copy`` shares the model by reference for that reason), and the tools are plain
functions. The one per-run thing the runner attaches to a model, the count of
model turns behind the turn cap, lives in a context variable that each run sets in its own task.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from agno.exceptions import ModelProviderError
from agno.models.base import Model

from agent_runner.models.registry import build_model
from agent_runner.settings import RunnerSettings
from agent_runner.tools.catalogue import build_tools
from shared.events import AgentSnapshot


class TurnCapExceeded(ModelProviderError):
    """Raised from inside the model call: agno's tool loop has no cap of its own."""


@dataclass
class TurnCount:
    turns: int = 0


_current_turns: ContextVar[TurnCount | None] = ContextVar("agentos_model_turns", default=None)


def count_model_turns(count: TurnCount) -> None:
    """Count the model turns of the run executing in the current task (and tasks it starts)
    into ``count``."""
    _current_turns.set(count)


@dataclass(frozen=True)
class AgentParts:
    model: Model
    tools: list[Callable]


class PartsCache:
    """Least recently used parts, keyed by everything they are built from: the version alone
    would do while versions only go up, but an agent deleted and created again under the same
    id starts at version 1 again."""

    def __init__(self, settings: RunnerSettings, max_entries: int = 256) -> None:
        self.settings = settings
        self.max_entries = max_entries
        self._parts: OrderedDict[tuple, AgentParts] = OrderedDict()

    def get(self, snap: AgentSnapshot) -> AgentParts:
        key = (snap.id, snap.version, snap.model, tuple(snap.tools), json.dumps(snap.options, sort_keys=True, default=str))
        parts = self._parts.get(key)
        if parts is None:
            # Errors (provider not configured, invalid definition) propagate and nothing is kept.
            tools = build_tools(snap.tools, http_allowed_hosts=self.settings.allowed_hosts)
            parts = AgentParts(model=self._model(snap), tools=tools)
            self._parts[key] = parts
            while len(self._parts) > self.max_entries:
                self._parts.popitem(last=False)
        else:
            self._parts.move_to_end(key)
        return parts

    def _model(self, snap: AgentSnapshot) -> Model:
        model = build_model(snap.model, snap.options, self.settings)
        model.retries = self.settings.transient_retries
        model.delay_between_retries = self.settings.retry_backoff_s  # type: ignore[assignment]
        model.exponential_backoff = True
        _cap_model_turns(model, self.settings.max_tool_calls + 2)
        return model


def _cap_model_turns(model: Any, cap: int) -> None:
    def count() -> None:
        counter = _current_turns.get()
        if counter is None:  # a call outside a run (none today): nothing to count against
            return
        counter.turns += 1
        if counter.turns > cap:
            raise TurnCapExceeded(f"model turn cap ({cap}) exceeded", status_code=400,
                                  model_name=model.name, model_id=model.id)

    ainvoke, ainvoke_stream = model.ainvoke, model.ainvoke_stream

    async def capped_ainvoke(*args: Any, **kwargs: Any):
        count()
        return await ainvoke(*args, **kwargs)

    async def capped_ainvoke_stream(*args: Any, **kwargs: Any):
        count()
        async for chunk in ainvoke_stream(*args, **kwargs):
            yield chunk

    model.ainvoke = capped_ainvoke
    model.ainvoke_stream = capped_ainvoke_stream
