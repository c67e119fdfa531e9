"""An independent recount, in plain Python, of what the metrics API should answer.

Written from the definitions (sessions = SessionCreated, messages = RunRequested +
RunCompleted, runs = UsageRecorded, errors = failed runs, ...), not from the SQL.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from shared.events import Event, RunCompleted, RunRequested, SessionCreated, UsageRecorded


def unique(events: Iterable[Event]) -> list[Event]:
    seen: dict[str, Event] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def floor(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what ClickHouse's quantiles() does while it
    holds every value)."""
    if not values:
        return None
    ordered = sorted(values)
    index = q * (len(ordered) - 1)
    low = math.floor(index)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def in_window(events: Iterable[Event], bucket: str, start: datetime, end: datetime) -> list[Event]:
    start = floor(start, bucket)
    return [e for e in events if start <= floor(e.occurred_at, bucket) < end]


def counters(events: list[Event]) -> dict:
    sessions = [e for e in events if isinstance(e, SessionCreated)]
    asked = [e for e in events if isinstance(e, RunRequested)]
    answered = [e for e in events if isinstance(e, RunCompleted)]
    usage = [e for e in events if isinstance(e, UsageRecorded)]
    runs = len(usage)
    completed = sum(u.status == "completed" for u in usage)
    failed = sum(u.status == "failed" for u in usage)
    latencies = [u.latency_ms for u in usage]
    ttfts = [u.ttft_ms for u in usage if u.ttft_ms is not None]
    waits = [u.queue_wait_ms for u in usage if u.queue_wait_ms is not None]
    costs = [u.cost_usd for u in usage if u.cost_usd is not None]
    return {
        "sessions": len(sessions),
        "messages": len(asked) + len(answered),
        "user_messages": len(asked),
        "assistant_messages": len(answered),
        "runs": runs,
        "completed_runs": completed,
        "errors": failed,
        "cancelled_runs": sum(u.status == "cancelled" for u in usage),
        "success_rate": completed / runs if runs else None,
        "error_rate": failed / runs if runs else None,
        "input_tokens": sum(u.input_tokens for u in usage),
        "output_tokens": sum(u.output_tokens for u in usage),
        "total_tokens": sum(u.total_tokens for u in usage),
        "cached_tokens": sum(u.cached_tokens for u in usage),
        "reasoning_tokens": sum(u.reasoning_tokens for u in usage),
        "cost": sum(costs),
        "priced_runs": len(costs),
        "avg_latency_ms": sum(latencies) / runs if runs else None,
        "p50_latency_ms": quantile(latencies, 0.5),
        "p95_latency_ms": quantile(latencies, 0.95),
        "p99_latency_ms": quantile(latencies, 0.99),
        "avg_ttft_ms": sum(ttfts) / len(ttfts) if ttfts else None,
        "p50_ttft_ms": quantile(ttfts, 0.5),
        "p95_ttft_ms": quantile(ttfts, 0.95),
        "avg_queue_wait_ms": sum(waits) / len(waits) if waits else None,
        "unique_users": len({e.user_id for e in sessions + asked + answered + usage}),
        "active_users": len({u.user_id for u in usage}),
    }


def errors_by_type(events: list[Event]) -> dict[str, int]:
    return dict(sorted(Counter(
        e.error_type or "unknown" for e in events if isinstance(e, UsageRecorded) and e.status == "failed"
    ).items()))


def series(events: list[Event], bucket: str, start: datetime, end: datetime) -> list[dict]:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    out, current = [], floor(start, bucket)
    while current < end:
        in_bucket = [e for e in events if floor(e.occurred_at, bucket) == current]
        out.append({"bucket_start": current, **counters(in_bucket)})
        current += step
    return out


def model_of(event: Event) -> str:
    if isinstance(event, RunRequested):
        return event.agent.model
    if isinstance(event, RunCompleted | UsageRecorded):
        return event.model
    return ""


def by(events: list[Event], key) -> dict[str, dict]:
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(key(event), []).append(event)
    return {k: {**counters(v), "errors_by_type": errors_by_type(v)} for k, v in groups.items()}


def assert_counters_equal(actual: dict, expected: dict, where: str = "") -> None:
    for name, want in expected.items():
        got = actual[name]
        if want is None or got is None:
            assert got == want, f"{where}{name}: {got} != {want}"
        elif isinstance(want, float):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{where}{name}: {got} != {want}"
        else:
            assert got == want, f"{where}{name}: {got} != {want}"


#: Quantiles the rollups without user_id (metrics_agent_*, metrics_system_*) estimate with a
#: t-digest: field -> (what, q).
SKETCHED = {
    "p50_latency_ms": ("latency", 0.5), "p95_latency_ms": ("latency", 0.95),
    "p99_latency_ms": ("latency", 0.99), "p50_ttft_ms": ("ttft", 0.5), "p95_ttft_ms": ("ttft", 0.95),
}


def quantile_within(got: float | None, values: list[float], q: float, rank_tol: float = 0.01,
                    abs_tol: float = 0.0) -> bool:
    """``got`` lies between the values ranked ``k`` places below and above the exact q-quantile,
    ``k = max(1, ceil(rank_tol * n))`` (t-digest promises rank accuracy, and returns Float32);
    ``abs_tol`` widens that range (for a rounded ``got``)."""
    if not values:
        return got is None
    if got is None:
        return False
    ordered = sorted(values)
    n = len(ordered)
    k = max(1, math.ceil(rank_tol * n))
    lo = ordered[max(0, math.floor(q * (n - 1)) - k)]
    hi = ordered[min(n - 1, math.ceil(q * (n - 1)) + k)]
    slack = 1e-6 * max(abs(lo), abs(hi), 1.0) + abs_tol
    return lo - slack <= got <= hi + slack


def assert_counters_close(actual: dict, events: list[Event], where: str = "", rank_tol: float = 0.01) -> None:
    """Every counter exactly as ``assert_counters_equal``, except the SKETCHED quantiles: those
    within ``rank_tol`` in rank of the exact value."""
    expected = counters(events)
    assert_counters_equal(actual, {k: v for k, v in expected.items() if k not in SKETCHED}, where)
    usage = [e for e in events if isinstance(e, UsageRecorded)]
    values = {
        "latency": [u.latency_ms for u in usage],
        "ttft": [u.ttft_ms for u in usage if u.ttft_ms is not None],
    }
    for name, (what, q) in SKETCHED.items():
        assert quantile_within(actual[name], values[what], q, rank_tol), (
            f"{where}{name}: {actual[name]} is not within {rank_tol:.0%} in rank of {expected[name]}"
        )
