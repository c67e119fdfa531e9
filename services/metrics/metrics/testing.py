"""Test support for the metrics service (imported by tests only).

One process can open only ONE chdb directory, and only once: every test of a pytest process
shares the client returned by ``shared_chdb_client`` and isolates itself in its own database
(``fresh_database``) instead of opening another path.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from metrics.migrate import migrate, quote_database
from shared.events import (
    AgentSnapshot,
    Event,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRequested,
    RunStarted,
    RunUsage,
    SessionCreated,
    SessionDeleted,
    UsageRecorded,
)

_client: Client | None = None
_client_path: Path | None = None
_lock = threading.Lock()


def shared_chdb_client(path: Path) -> Client:
    """The process-wide embedded ClickHouse client; ``path`` is used by the first call only."""
    global _client, _client_path
    with _lock:
        if _client is None:
            path.mkdir(parents=True, exist_ok=True)
            _client = clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")
            _client_path = path
        return _client


def fresh_database(client: Client, *, migrated: bool = True) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    if migrated:
        migrate(client, name)
    else:
        client.command(f"CREATE DATABASE {quote_database(name)}")
    return name


def drop_database(client: Client, name: str) -> None:
    # SYNC: without it ClickHouse keeps dropped data for 8 minutes.
    client.command(f"DROP DATABASE IF EXISTS {quote_database(name)} SYNC")


# -- realistic event streams -----------------------------------------------------------------


@dataclass
class Conversation:
    """The events of one session: created, N runs (request, start, outcome, usage), maybe deleted."""

    events: list[Event] = field(default_factory=list)


ERROR_TYPES = ("agent_error", "provider_not_configured", "deadline_exceeded")


def generate_events(
    *,
    seed: int = 7,
    sessions: int = 40,
    users: int = 6,
    agents: int = 3,
    models: tuple[str, ...] = ("openai:gpt-4o-mini", "anthropic:claude-3-5-haiku", "scripted:assistant"),
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    span: timedelta = timedelta(days=3),
    max_runs: int = 6,
) -> list[Event]:
    """A deterministic mix of every event type metrics reads (plus RunStarted, which it
    ignores), spread over ``span`` so they fall into many hours and a few days."""
    rng = random.Random(seed)
    out: list[Event] = []
    for s in range(sessions):
        user = f"user-{rng.randrange(users)}"
        agent_index = rng.randrange(agents)
        agent = f"agent-{agent_index}"
        model = models[agent_index % len(models)]
        session = f"sess-{seed}-{s}"
        corr = f"corr-{seed}-{s}"
        at = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        base = {"correlation_id": corr, "user_id": user, "agent_id": agent, "session_id": session}
        out.append(SessionCreated(**base, occurred_at=at, agent_name=agent.title(), title=f"Chat {s}"))
        snapshot = AgentSnapshot(id=agent, name=agent.title(), model=model, version=2)
        for r in range(rng.randrange(max_runs + 1)):
            run = f"run-{seed}-{s}-{r}"
            at += timedelta(minutes=rng.uniform(1, 50))
            run_base = {**base, "run_id": run}
            out.append(RunRequested(
                **run_base, occurred_at=at, agent=snapshot, message_id=f"msg-{s}-{r}",
                message="x" * rng.randrange(1, 40), requested_at=at,
            ))
            wait = round(rng.uniform(0.5, 40), 3)
            out.append(RunStarted(**run_base, occurred_at=at, queue_wait_ms=wait))
            latency = round(rng.uniform(5, 3000), 3)
            ttft = round(rng.uniform(1, latency), 3) if rng.random() < 0.8 else None
            cost = round(rng.uniform(0, 0.02), 6) if rng.random() < 0.7 else None
            tokens_in, tokens_out = rng.randrange(0, 2000), rng.randrange(0, 800)
            cached, reasoning = rng.randrange(0, tokens_in + 1), rng.randrange(0, 100)
            roll = rng.random()
            status = "completed" if roll < 0.75 else "failed" if roll < 0.92 else "cancelled"
            done_at = at + timedelta(milliseconds=latency)
            error_type = None
            if status == "completed":
                out.append(RunCompleted(
                    **run_base, occurred_at=done_at, content="y" * rng.randrange(1, 60), model=model,
                    usage=RunUsage(input_tokens=tokens_in, output_tokens=tokens_out,
                                   total_tokens=tokens_in + tokens_out, cost_usd=cost,
                                   latency_ms=latency, ttft_ms=ttft),
                ))
            elif status == "failed":
                error_type = rng.choice(ERROR_TYPES)
                out.append(RunFailed(**run_base, occurred_at=done_at, error="boom", error_type=error_type))
            else:
                out.append(RunCancelled(**run_base, occurred_at=done_at))
            out.append(UsageRecorded(
                **run_base, occurred_at=done_at, provider=model.split(":")[0], model=model,
                status=status, error_type=error_type, input_tokens=tokens_in,
                output_tokens=tokens_out, total_tokens=tokens_in + tokens_out,
                cached_tokens=cached, reasoning_tokens=reasoning, cost_usd=cost,
                latency_ms=latency, ttft_ms=ttft,
                queue_wait_ms=wait if rng.random() < 0.9 else None,
                tool_calls=rng.randrange(3), model_turns=rng.randrange(1, 4),
            ))
        if rng.random() < 0.2:
            out.append(SessionDeleted(**base, occurred_at=at + timedelta(minutes=5)))
    return out


def overlapping_batches(events: list[Event], *, seed: int = 1) -> Iterator[list[Event]]:
    """Every event at least once, many several times, with shifting batch boundaries: the
    redeliveries a crash, a rebalance or a retry would cause."""
    rng = random.Random(seed)
    i = 0
    while i < len(events):
        size = rng.randrange(1, 120)
        yield events[i : i + size]
        # step back so the next batch starts inside this one (a redelivery from an older commit)
        step = max(1, size - rng.randrange(0, size + 1))
        i += step
    # a whole replay with different boundaries, and one batch holding duplicates of itself
    yield from (events[j : j + 333] for j in range(0, len(events), 333))
    sample = rng.sample(events, min(50, len(events)))
    yield sample + sample
