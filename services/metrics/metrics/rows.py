"""Pure mapping: one decoded event -> the rows it adds to the raw tables. No I/O here.

| event            | table            | note                                             |
|------------------|------------------|--------------------------------------------------|
| SessionCreated   | sessions_raw     | counts as a session                              |
| SessionDeleted   | sessions_raw     | kept for the record, not counted                 |
| RunRequested     | messages_raw     | one user message                                 |
| RunCompleted     | messages_raw     | one assistant message                            |
| UsageRecorded    | usage_raw        | one finished run: tokens, cost, latency, status  |
| RunFailed        | run_errors_raw   | error log (error counts come from UsageRecorded) |
| RunCancelled     | run_errors_raw   | cancellation log                                 |

Every other event type (RunStarted, RunDelta, CancelRun, ...) maps to nothing.
Message text and session titles are only kept when ``store_content`` is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    Event,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRequested,
    SessionCreated,
    SessionDeleted,
    UsageRecorded,
)

ENVELOPE = ("event_id", "event_type", "occurred_at", "correlation_id", "user_id", "agent_id", "session_id")

#: Insert column order of each raw table (``ingested_at`` is filled in by ClickHouse).
COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions_raw": ENVELOPE + ("agent_name", "title"),
    "messages_raw": ENVELOPE
    + (
        "run_id", "message_id", "role", "model", "agent_version", "content_chars", "content",
        "input_tokens", "output_tokens", "total_tokens", "cost_usd", "latency_ms", "ttft_ms",
    ),
    "usage_raw": ENVELOPE
    + (
        "run_id", "agent_version", "provider", "model", "status", "error_type", "input_tokens",
        "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "cost_usd",
        "price_version", "latency_ms", "ttft_ms", "queue_wait_ms", "tool_calls", "model_turns",
    ),
    "run_errors_raw": ENVELOPE
    + ("run_id", "agent_version", "outcome", "error_type", "error_message", "reason"),
}
TABLES = tuple(COLUMNS)

#: Event types that produce rows; anything else is acknowledged and ignored.
USED_EVENT_TYPES: tuple[type[Event], ...] = (
    SessionCreated, SessionDeleted, RunRequested, RunCompleted, RunFailed, RunCancelled, UsageRecorded,
)

# DateTime64 covers 1900..2299 and the hour/day buckets are DateTime (1970..2106): an event
# outside this range would poison every insert of its batch, so it is dead-lettered instead.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    table: str
    event_id: str
    values: tuple[Any, ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(COLUMNS[self.table], self.values, strict=True))


def is_used(event: Event) -> bool:
    return isinstance(event, USED_EVENT_TYPES)


def invalid_reason(event: Event) -> str | None:
    """Why a schema-valid event still cannot be stored (None = it can)."""
    occurred = _utc(event.occurred_at)
    if not EARLIEST <= occurred < LATEST:
        return f"occurred_at {event.occurred_at.isoformat()} is outside [{EARLIEST.year}, {LATEST.year})"
    for name, value in _floats(event):
        if value is not None and not math.isfinite(value):
            return f"{name} is not a finite number: {value!r}"
    for name, value, upper in _ints(event):
        if not 0 <= value < upper:
            return f"{name} = {value} is outside [0, {upper})"
    return None


def rows_for(event: Event, *, store_content: bool = False, error_max_chars: int = 2000) -> list[Row]:
    """The rows ``event`` contributes, in insert column order (``COLUMNS``)."""
    head = (
        event.event_id,
        event.type,
        _utc(event.occurred_at),
        event.correlation_id,
        event.user_id,
        event.agent_id or "",
        event.session_id or "",
    )
    if isinstance(event, SessionCreated | SessionDeleted):
        created = isinstance(event, SessionCreated)
        values = head + (
            event.agent_name if created else "",
            event.title if created and store_content else "",
        )
        return [Row("sessions_raw", event.event_id, values)]
    if isinstance(event, RunRequested):
        values = head + (
            event.run_id or "", event.message_id, "user", event.agent.model, event.agent.version,
            len(event.message), event.message if store_content else "",
            0, 0, 0, None, 0.0, None,
        )
        return [Row("messages_raw", event.event_id, values)]
    if isinstance(event, RunCompleted):
        usage = event.usage
        values = head + (
            event.run_id or "", "", "assistant", event.model, event.agent_version,
            len(event.content), event.content if store_content else "",
            usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.cost_usd,
            usage.latency_ms, usage.ttft_ms,
        )
        return [Row("messages_raw", event.event_id, values)]
    if isinstance(event, UsageRecorded):
        values = head + (
            event.run_id or "", event.agent_version, event.provider, event.model, event.status,
            event.error_type or "", event.input_tokens, event.output_tokens, event.total_tokens,
            event.cached_tokens, event.reasoning_tokens, event.cost_usd, event.price_version or "",
            event.latency_ms, event.ttft_ms, event.queue_wait_ms, event.tool_calls, event.model_turns,
        )
        return [Row("usage_raw", event.event_id, values)]
    if isinstance(event, RunFailed):
        values = head + (
            event.run_id or "", event.agent_version, "failed", event.error_type,
            event.error[:error_max_chars], "",
        )
        return [Row("run_errors_raw", event.event_id, values)]
    if isinstance(event, RunCancelled):
        values = head + (event.run_id or "", 0, "cancelled", "", "", event.reason)
        return [Row("run_errors_raw", event.event_id, values)]
    return []


def rows_by_table(events, *, store_content: bool = False, error_max_chars: int = 2000) -> dict[str, list[Row]]:
    """Rows of many events grouped per table, first occurrence of an event_id winning (a batch
    may hold the same event twice after a producer retry)."""
    out: dict[str, list[Row]] = {}
    seen: set[tuple[str, str]] = set()
    for event in events:
        for row in rows_for(event, store_content=store_content, error_max_chars=error_max_chars):
            key = (row.table, row.event_id)
            if key in seen:
                continue
            seen.add(key)
            out.setdefault(row.table, []).append(row)
    return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_U32 = 2**32
_U64 = 2**63  # Python ints are unbounded; keep sums far from UInt64 overflow


def _ints(event: Event):
    if isinstance(event, UsageRecorded):
        yield ("agent_version", event.agent_version, _U32)
        yield ("tool_calls", event.tool_calls, _U32)
        yield ("model_turns", event.model_turns, _U32)
        for name in ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
            yield (name, getattr(event, name), _U64)
    elif isinstance(event, RunCompleted):
        yield ("agent_version", event.agent_version, _U32)
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            yield (f"usage.{name}", getattr(event.usage, name), _U64)
    elif isinstance(event, RunRequested):
        yield ("agent.version", event.agent.version, _U32)
    elif isinstance(event, RunFailed):
        yield ("agent_version", event.agent_version, _U32)


def _floats(event: Event):
    if isinstance(event, UsageRecorded):
        yield from (
            ("cost_usd", event.cost_usd), ("latency_ms", event.latency_ms),
            ("ttft_ms", event.ttft_ms), ("queue_wait_ms", event.queue_wait_ms),
        )
    elif isinstance(event, RunCompleted):
        yield from (
            ("usage.cost_usd", event.usage.cost_usd), ("usage.latency_ms", event.usage.latency_ms),
            ("usage.ttft_ms", event.usage.ttft_ms),
        )
