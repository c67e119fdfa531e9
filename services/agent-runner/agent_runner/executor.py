"""Runs one ``RunRequested`` through a real agno Agent and reports what happened as events.

Order of effects (what makes redelivery safe):
1. a run already finished -> re-publish its stored events (same event ids) and stop;
2. ``RunStarted`` -> the agent run (deltas while streaming) -> terminal event + usage;
3. the terminal and usage events are stored *before* they are published, so a crash after
   the store re-publishes identical events on redelivery and downstream deduplicates them
   by ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agno.agent import Agent
from agno.run.agent import RunContentEvent, RunErrorEvent, RunOutput
from agno.run.base import RunStatus

from agent_runner.models.registry import ProviderNotConfigured
from agent_runner.parts import PartsCache, TurnCount, count_model_turns
from agent_runner.pricing import PRICE_VERSION, cost_usd
from agent_runner.results import ResultStore
from agent_runner.settings import RunnerSettings
from shared.catalogue import InvalidAgentDefinition, parse_model_spec
from shared.events import (
    Event,
    RunCancelled,
    RunCompleted,
    RunDelta,
    RunFailed,
    RunRequested,
    RunStarted,
    RunUsage,
    UsageRecorded,
    utcnow,
)

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]


@dataclass
class _Outcome:
    status: str  # completed | failed | cancelled
    content: str = ""
    error: str | None = None
    error_type: str | None = None
    output: RunOutput | None = None
    model_turns: int = 0
    ttft_ms: float | None = None
    deltas: int = 0


@dataclass
class RunRegistry:
    """Runs executing in this process and cancels that arrived for them (or before them)."""

    running: dict[str, asyncio.Task] = field(default_factory=dict)
    cancelled: dict[str, float] = field(default_factory=dict)
    ttl_s: float = 3600.0

    def request_cancel(self, run_id: str) -> bool:
        now = time.monotonic()
        self.cancelled[run_id] = now
        # Forget cancels of runs that never showed up here (another runner had them).
        for stale in [r for r, t in self.cancelled.items() if now - t > self.ttl_s]:
            del self.cancelled[stale]
        task = self.running.get(run_id)
        if task is not None and not task.done():
            task.cancel()
            return True
        return False

    def is_cancelled(self, run_id: str) -> bool:
        return run_id in self.cancelled


class RunExecutor:
    def __init__(self, settings: RunnerSettings, db: Any, results: ResultStore, publish: Publish) -> None:
        self.settings = settings
        self.db = db
        self.results = results
        self.publish = publish
        self.registry = RunRegistry()
        self.parts = PartsCache(settings)

    async def execute(self, request: RunRequested) -> None:
        run_id = request.run_id or ""
        stored = await self.results.get(run_id)
        if stored is not None:
            log.info("run %s already finished; re-publishing its %d events", run_id, len(stored))
            for event in stored:
                await self.publish(event)
            return

        started_at = utcnow()
        queue_wait_ms = max(0.0, (started_at - request.requested_at).total_seconds() * 1000)
        t0 = time.perf_counter()
        if self.registry.is_cancelled(run_id):
            outcome = _Outcome(status="cancelled", error="cancelled before it started", error_type="cancelled")
        else:
            await self.publish(RunStarted(**self._ids(request), queue_wait_ms=queue_wait_ms))
            outcome = await self._run_agent(request)
        latency_ms = (time.perf_counter() - t0) * 1000

        events = self._terminal_events(request, outcome, latency_ms, queue_wait_ms)
        await self.results.put(run_id, outcome.status, events)
        for event in events:
            await self.publish(event)

    # -- the agno run ----------------------------------------------------------------------
    def _agent(self, request: RunRequested) -> Agent:
        snap = request.agent
        parts = self.parts.get(snap)
        return Agent(
            id=snap.id,
            name=snap.name,
            model=parts.model,
            instructions=snap.instructions or None,
            description=snap.description or None,
            tools=parts.tools,
            db=self.db,
            add_history_to_context=self.settings.history_runs > 0,
            num_history_runs=self.settings.history_runs,
            tool_call_limit=self.settings.max_tool_calls,
            telemetry=False,
            markdown=False,
        )

    async def _run_agent(self, request: RunRequested) -> _Outcome:
        run_id = request.run_id or ""
        try:
            agent = self._agent(request)
        except ProviderNotConfigured as exc:
            return _Outcome(status="failed", error=str(exc), error_type="provider_not_configured")
        except InvalidAgentDefinition as exc:
            return _Outcome(status="failed", error=str(exc), error_type="invalid_agent")

        deadline = request.deadline_s or self.settings.run_deadline_s
        turns = TurnCount()
        task = asyncio.create_task(self._invoke(agent, request, turns))
        self.registry.running[run_id] = task
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), timeout=deadline)
        except TimeoutError:
            task.cancel()
            outcome = _Outcome(status="failed", error=f"run exceeded its deadline of {deadline:g}s",
                               error_type="deadline_exceeded")
        except asyncio.CancelledError:
            task.cancel()
            if self.registry.is_cancelled(run_id) and not _current_task_cancelling():
                outcome = _Outcome(status="cancelled", error="cancelled by user", error_type="cancelled")
            else:
                raise  # the worker is shutting down: leave the run unfinished (redelivered)
        finally:
            self.registry.running.pop(run_id, None)
        outcome.model_turns = turns.turns
        return outcome

    async def _invoke(self, agent: Agent, request: RunRequested, turns: TurnCount) -> _Outcome:
        count_model_turns(turns)  # this task's context: runs sharing the model count apart
        kwargs = dict(session_id=request.session_id, user_id=request.user_id, run_id=request.run_id,
                      metadata={"correlation_id": request.correlation_id, **({"context": request.context} if request.context else {})})
        t0 = time.perf_counter()
        ttft_ms = None
        seq = 0
        stream_error = None
        if request.stream:
            output: RunOutput | None = None
            async for item in agent.arun(request.message, stream=True, stream_events=False, yield_run_output=True, **kwargs):
                if isinstance(item, RunOutput):
                    output = item
                elif isinstance(item, RunErrorEvent):
                    stream_error = item.content or "agent run failed"
                elif isinstance(item, RunContentEvent) and isinstance(item.content, str) and item.content:
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - t0) * 1000
                    await self.publish(RunDelta(**self._ids(request), seq=seq, content=item.content))
                    seq += 1
        else:
            output = await agent.arun(request.message, **kwargs)
        if request.stream and stream_error is not None and (output is None or output.status == RunStatus.error):
            return _Outcome(status="failed", error=stream_error, error_type=_error_type(stream_error), output=output,
                            ttft_ms=ttft_ms)
        if output is None:
            return _Outcome(status="failed", error="agent produced no output", error_type="agent_error")
        if output.status == RunStatus.error:
            error = output.content if isinstance(output.content, str) else "agent run failed"
            return _Outcome(status="failed", error=error, error_type=_error_type(error), output=output, ttft_ms=ttft_ms)
        content = output.content if isinstance(output.content, str) else str(output.content or "")
        return _Outcome(status="completed", content=content, output=output, ttft_ms=ttft_ms,
                        deltas=seq if request.stream else 0)

    # -- events ------------------------------------------------------------------------------
    @staticmethod
    def _ids(request: RunRequested) -> dict[str, Any]:
        return dict(correlation_id=request.correlation_id, user_id=request.user_id, agent_id=request.agent_id,
                    session_id=request.session_id, run_id=request.run_id)

    def _terminal_events(self, request: RunRequested, outcome: _Outcome, latency_ms: float, queue_wait_ms: float) -> list[Event]:
        snap = request.agent
        metrics = outcome.output.metrics if outcome.output is not None and outcome.output.metrics else None
        input_tokens = metrics.input_tokens if metrics else 0
        output_tokens = metrics.output_tokens if metrics else 0
        cached = (metrics.cache_read_tokens if metrics else 0) or 0
        reasoning = (metrics.reasoning_tokens if metrics else 0) or 0
        ttft_ms = outcome.ttft_ms
        if ttft_ms is None and metrics and metrics.time_to_first_token is not None:
            ttft_ms = metrics.time_to_first_token * 1000
        cost = cost_usd(snap.model, input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached)
        tool_calls = len(outcome.output.tools or []) if outcome.output is not None else 0
        ids = self._ids(request)
        usage = RunUsage(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens,
                         cached_tokens=cached, reasoning_tokens=reasoning, cost_usd=cost, latency_ms=latency_ms, ttft_ms=ttft_ms)
        if outcome.status == "completed":
            terminal: Event = RunCompleted(**ids, agent_version=snap.version, content=outcome.content, model=snap.model, usage=usage,
                                            deltas=outcome.deltas)
        elif outcome.status == "cancelled":
            terminal = RunCancelled(**ids, reason=outcome.error or "cancelled")
        else:
            terminal = RunFailed(**ids, agent_version=snap.version, error=outcome.error or "run failed",
                                 error_type=outcome.error_type or "agent_error")
        try:
            provider, _ = parse_model_spec(snap.model)
        except InvalidAgentDefinition:
            provider = "unknown"
        usage_event = UsageRecorded(
            **ids, agent_version=snap.version, provider=provider, model=snap.model, status=outcome.status,  # type: ignore[arg-type]
            error_type=outcome.error_type if outcome.status != "completed" else None,
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens,
            cached_tokens=cached, reasoning_tokens=reasoning, cost_usd=cost, price_version=PRICE_VERSION,
            latency_ms=latency_ms, ttft_ms=ttft_ms, queue_wait_ms=queue_wait_ms, tool_calls=tool_calls,
            model_turns=outcome.model_turns,
        )
        return [terminal, usage_event]


def _error_type(error: str) -> str:
    return "turn_cap_exceeded" if "turn cap" in error else "agent_error"


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
