"""Every SQL recipe of docs/analytics-cookbook.md runs, and the important ones are right.

Each ```sql block is run verbatim through ``AnalystSQL`` (the guard behind ``POST /v1/sql``
and the gateway's admin endpoint). It runs against a real embedded ClickHouse database that
the real ``MetricsWriter`` filled, so the materialized views populate the aggregates. The
results are then compared with a count done in plain Python from the generated events.

The events are placed in the last few days, so the recipes' ``now()``-relative windows cover
them as the doc states them. A burst of failures with an unpriced model in one hour gives the
spike and unpriced-usage recipes something to find. A failure row is also inserted a second
time past the writer's duplicate filter (as a broken rebalance could do). The raw-table
recipes must hide it with FINAL / uniqExact.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import metrics_recount as rc
import pytest
import pytest_asyncio
from metrics.migrate import quote_database
from metrics.queries import AnalystSQL, SqlLimits, iso
from metrics.rows import rows_for
from metrics.testing import drop_database, fresh_database, generate_events
from metrics.writer import MetricsWriter

from shared.events import (
    AgentSnapshot,
    RunCompleted,
    RunFailed,
    RunRequested,
    SessionCreated,
    SessionDeleted,
    UsageRecorded,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "analytics-cookbook.md"

# -- the recipes ---------------------------------------------------------------------------------

_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_RECIPE = re.compile(r"^<!-- recipe: ([a-z0-9-]+) -->\n```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def load_recipes() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    labelled = _RECIPE.findall(text)
    ids = [name for name, _ in labelled]
    assert len(ids) == len(set(ids)), f"duplicate recipe ids: {ids}"
    assert len(labelled) == len(_SQL_BLOCK.findall(text)), (
        "every ```sql block needs a `<!-- recipe: <id> -->` line right above it"
    )
    return dict(labelled)


RECIPES = load_recipes()

# -- the data ------------------------------------------------------------------------------------

NOW = datetime.now(UTC)
START = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(days=4)
BURST_HOUR = START + timedelta(days=2, hours=5)
UNPRICED_MODEL = "ollama:llama3.1"


def failure_burst() -> list:
    """8 failed runs of an unpriced model within one hour: an error spike."""
    base = {"correlation_id": "corr-burst", "user_id": "user-2", "agent_id": "agent-1", "session_id": "sess-burst"}
    snapshot = AgentSnapshot(id="agent-1", name="Agent-1", model=UNPRICED_MODEL, version=3)
    out: list = [SessionCreated(**base, occurred_at=BURST_HOUR, agent_name="Agent-1", title="burst")]
    for i in range(8):
        at = BURST_HOUR + timedelta(minutes=1 + 6 * i)
        run = {**base, "run_id": f"run-burst-{i}"}
        done = at + timedelta(milliseconds=250 + i)
        out += [
            RunRequested(**run, occurred_at=at, agent=snapshot, message_id=f"msg-burst-{i}", message="hi",
                         requested_at=at),
            RunFailed(**run, occurred_at=done, agent_version=3, error=f"no provider for {UNPRICED_MODEL}",
                      error_type="provider_not_configured"),
            UsageRecorded(**run, occurred_at=done, agent_version=3, provider="ollama", model=UNPRICED_MODEL,
                          status="failed", error_type="provider_not_configured", input_tokens=10 + i,
                          total_tokens=10 + i, latency_ms=250.0 + i, queue_wait_ms=1.5 * i),
        ]
    return out


EVENTS = generate_events(
    seed=23, sessions=100, users=7, agents=3, start=START, span=timedelta(days=3)
) + failure_burst()
assert len({e.event_id for e in EVENTS}) == len(EVENTS)
USAGE = [e for e in EVENTS if isinstance(e, UsageRecorded)]
FAILED = [u for u in USAGE if u.status == "failed"]


def day(moment: datetime) -> str:
    return iso(rc.floor(moment, "day"))


def hour(moment: datetime) -> str:
    return iso(rc.floor(moment, "hour"))


def ms(moment: datetime) -> str:
    """As a DateTime64(3) column stores it."""
    return iso(moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000))


@pytest_asyncio.fixture(scope="module")
async def cookbook_db(ch_client):
    db = fresh_database(ch_client)
    writer = MetricsWriter(ch_client, db)
    for i in range(0, len(EVENTS), 300):
        await writer.write(EVENTS[i : i + 300])
    await writer.write(EVENTS[150:750])  # a redelivery: dropped by the writer
    assert writer.stats.duplicate_rows > 0
    # A copy of the latest failure that got past the duplicate filter (only ReplacingMergeTree
    # can collapse it, on merge): run_errors_raw feeds no aggregate, so only raw reads see it.
    # Merges are stopped so that the copy stays there, as it would until the next merge.
    ch_client.command(f"SYSTEM STOP MERGES {quote_database(db)}.run_errors_raw")
    latest_failure = max((e for e in EVENTS if isinstance(e, RunFailed)), key=lambda e: e.occurred_at)
    writer._insert("run_errors_raw", rows_for(latest_failure), "cookbook-slipped-duplicate")
    stored = f"SELECT count(), uniqExact(event_id) FROM {quote_database(db)}.run_errors_raw"
    rows, ids = ch_client.query(stored).result_rows[0]
    assert rows == ids + 1
    yield db
    drop_database(ch_client, db)


@pytest.fixture
def analyst_sql(ch_client, cookbook_db):
    return AnalystSQL(ch_client, cookbook_db, SqlLimits(max_execution_time_s=10, max_result_rows=10_000))


def close(got, want, tol=1e-9) -> bool:
    if want is None or got is None:
        return got is None and want is None
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=tol)


ROUNDED_1 = 0.0501  # the recipe rounds to 1 decimal
ROUNDED_3 = 0.000501
ROUNDED_4 = 0.0000501


# -- the recounts, one per checked recipe ----------------------------------------------------------


def check_schema(rows):
    tables = {r["table"] for r in rows}
    assert tables == {"sessions_raw", "messages_raw", "usage_raw", "run_errors_raw", "metrics_hourly", "metrics_daily"}
    assert all(r["comment"] for r in rows), [r for r in rows if not r["comment"]]


def check_cost_per_user_per_day(rows):
    want = defaultdict(lambda: {"cost": 0.0, "runs": 0, "priced": 0})
    for u in USAGE:
        entry = want[(day(u.occurred_at), u.user_id)]
        entry["runs"] += 1
        if u.cost_usd is not None:
            entry["cost"] += u.cost_usd
            entry["priced"] += 1
    got = {(r["day"], r["user_id"]): r for r in rows}
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        assert close(g["cost"], w["cost"]), (key, g, w)
        assert (g["total_runs"], g["priced"], g["unpriced_runs"]) == (
            w["runs"], w["priced"], w["runs"] - w["priced"]
        ), key
    assert sum(w["runs"] - w["priced"] for w in want.values()) > 0  # the unpriced column was exercised


def check_tokens_per_agent_model_day(rows):
    want = defaultdict(Counter)
    for u in USAGE:
        want[(day(u.occurred_at), u.agent_id, u.model)].update({
            "total_runs": 1, "input": u.input_tokens, "output": u.output_tokens, "total": u.total_tokens,
            "cached": u.cached_tokens, "reasoning": u.reasoning_tokens,
        })
    got = {(r["day"], r["agent_id"], r["model"]): r for r in rows}
    assert got.keys() == want.keys()
    for key, w in want.items():
        assert {k: got[key][k] for k in w} == dict(w), key


def check_slowest_agents(rows):
    by_agent = defaultdict(list)
    for u in USAGE:
        by_agent[u.agent_id].append(u)
    want = {}
    for agent, runs in by_agent.items():
        if len(runs) < 20:
            continue
        latencies = [u.latency_ms for u in runs]
        ttfts = [u.ttft_ms for u in runs if u.ttft_ms is not None]
        want[agent] = {
            "total_runs": len(runs),
            "avg_latency_ms": sum(latencies) / len(runs),
            "p50_latency_ms": rc.quantile(latencies, 0.5),
            "p95_latency_ms": rc.quantile(latencies, 0.95),
            "p99_latency_ms": rc.quantile(latencies, 0.99),
            "runs_with_ttft": len(ttfts),
            "avg_ttft_ms": sum(ttfts) / len(ttfts) if ttfts else None,
            "p50_ttft_ms": rc.quantile(ttfts, 0.5),
            "p95_ttft_ms": rc.quantile(ttfts, 0.95),
            "p99_ttft_ms": rc.quantile(ttfts, 0.99),
        }
    assert len(want) >= 2
    got = {r["agent_id"]: r for r in rows}
    assert got.keys() == want.keys()
    for agent, w in want.items():
        for name, value in w.items():
            assert close(got[agent][name], value, ROUNDED_1), (agent, name, got[agent][name], value)
    p95 = [r["p95_latency_ms"] for r in rows]
    assert p95 == sorted(p95, reverse=True)


def hourly_errors() -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for u in FAILED:
        out[hour(u.occurred_at)][u.error_type or "unknown"] += 1
    return out


def check_errors_per_hour_by_type(rows):
    want = {(h, t): n for h, types in hourly_errors().items() for t, n in types.items()}
    got = {(r["hour"], r["error_type"]): r["errors"] for r in rows}
    assert len(got) == len(rows)
    assert got == want
    assert sum(got.values()) == len(FAILED)


def check_error_spikes(rows):
    per_hour = hourly_errors()
    totals = {datetime.fromisoformat(h): sum(c.values()) for h, c in per_hour.items()}
    want = {}
    for moment, errors in totals.items():
        trailing = sum(n for m, n in totals.items() if moment - timedelta(hours=24) <= m < moment) / 24
        if errors >= 3 and errors > 3 * trailing:
            want[iso(moment)] = (errors, trailing, dict(per_hour[iso(moment)]))
    assert iso(BURST_HOUR) in want
    got = {r["hour"]: r for r in rows}
    assert got.keys() == want.keys()
    for h, (errors, trailing, by_type) in want.items():
        assert got[h]["errors"] == errors
        assert close(got[h]["trailing_avg"], trailing, ROUNDED_3)
        assert got[h]["by_type"] == by_type


def check_success_rate_per_agent(rows):
    want = defaultdict(Counter)
    for u in USAGE:
        want[u.agent_id].update({"total_runs": 1, u.status: 1})
    got = {r["agent_id"]: r for r in rows}
    assert got.keys() == want.keys()
    for agent, w in want.items():
        g = got[agent]
        assert (g["total_runs"], g["completed"], g["failed"], g["cancelled"]) == (
            w["total_runs"], w["completed"], w["failed"], w["cancelled"]
        ), agent
        assert close(g["success_rate"], w["completed"] / w["total_runs"], ROUNDED_4)
        assert close(g["error_rate"], w["failed"] / w["total_runs"], ROUNDED_4)
        assert close(g["cancel_rate"], w["cancelled"] / w["total_runs"], ROUNDED_4)
    rates = [r["success_rate"] for r in rows]
    assert rates == sorted(rates)


def check_queue_wait_p95_per_hour(rows):
    by_hour = defaultdict(list)
    for u in USAGE:
        by_hour[hour(u.occurred_at)].append(u)
    got = {r["hour"]: r for r in rows}
    assert got.keys() == by_hour.keys()
    for h, runs in by_hour.items():
        waits = [u.queue_wait_ms for u in runs if u.queue_wait_ms is not None]
        g = got[h]
        assert (g["total_runs"], g["runs_with_wait"]) == (len(runs), len(waits)), h
        assert close(g["avg_queue_wait_ms"], sum(waits) / len(waits) if waits else None, ROUNDED_1), h
        assert close(g["p95_queue_wait_ms"], rc.quantile(waits, 0.95), ROUNDED_1), h
        assert close(g["max_queue_wait_ms"], max(waits) if waits else None, ROUNDED_1), h


def check_most_active_users(rows):
    want = defaultdict(lambda: {"total_runs": 0, "messages_sent": 0, "sessions_created": 0, "agents": set(),
                                "tokens": 0, "cost": 0.0, "last": None})
    for e in EVENTS:
        if not isinstance(e, SessionCreated | RunRequested | RunCompleted | UsageRecorded):
            continue
        w = want[e.user_id]
        w["last"] = max(filter(None, [w["last"], day(e.occurred_at)]))
        if isinstance(e, SessionCreated):
            w["sessions_created"] += 1
        elif isinstance(e, RunRequested):
            w["messages_sent"] += 1
        elif isinstance(e, UsageRecorded):
            w["total_runs"] += 1
            w["agents"].add(e.agent_id)
            w["tokens"] += e.total_tokens
            w["cost"] += e.cost_usd or 0.0
    assert len(want) <= 20  # LIMIT 20 keeps everyone
    got = {r["user_id"]: r for r in rows}
    assert got.keys() == want.keys()
    for user, w in want.items():
        g = got[user]
        assert (g["total_runs"], g["messages_sent"], g["sessions_created"], g["agents_used"], g["tokens"]) == (
            w["total_runs"], w["messages_sent"], w["sessions_created"], len(w["agents"]), w["tokens"]
        ), user
        assert close(g["cost"], w["cost"])
        assert g["last_active_day"] == w["last"], user
    ranking = [(r["total_runs"], r["messages_sent"]) for r in rows]
    assert ranking == sorted(ranking, reverse=True)


def check_sessions_and_messages_per_day(rows):
    want = defaultdict(lambda: {"sessions_created": 0, "user_msgs": 0, "assistant_msgs": 0, "users": set()})
    for e in EVENTS:
        if isinstance(e, SessionDeleted):
            want[day(e.occurred_at)]  # a deletion leaves an all-zero aggregate row for its day
            continue
        if not isinstance(e, SessionCreated | RunRequested | RunCompleted | UsageRecorded):
            continue
        w = want[day(e.occurred_at)]
        w["users"].add(e.user_id)
        w["sessions_created"] += isinstance(e, SessionCreated)
        w["user_msgs"] += isinstance(e, RunRequested)
        w["assistant_msgs"] += isinstance(e, RunCompleted)
    got = {r["day"]: r for r in rows}
    assert got.keys() == want.keys()
    for d, w in want.items():
        g = got[d]
        assert (g["sessions_created"], g["user_msgs"], g["assistant_msgs"], g["messages"], g["unique_users"]) == (
            w["sessions_created"], w["user_msgs"], w["assistant_msgs"], w["user_msgs"] + w["assistant_msgs"],
            len(w["users"]),
        ), d


def check_unpriced_usage(rows):
    by_model = defaultdict(list)
    for u in USAGE:
        by_model[(u.model, u.provider)].append(u)
    want = {}
    for key, runs in by_model.items():
        unpriced = [u for u in runs if u.cost_usd is None]
        if unpriced:
            want[key] = {
                "total_runs": len(runs), "unpriced_runs": len(unpriced),
                "never_priced": int(len(unpriced) == len(runs)),
                "unpriced_tokens": sum(u.total_tokens for u in unpriced),
                "last_unpriced_at": ms(max(u.occurred_at for u in unpriced)),
            }
    got = {(r["model"], r["provider"]): r for r in rows}
    assert got.keys() == want.keys()
    for key, w in want.items():
        assert {k: got[key][k] for k in w} == w, key
        assert close(got[key]["unpriced_share"], w["unpriced_runs"] / w["total_runs"], ROUNDED_4)
    assert got[(UNPRICED_MODEL, "ollama")]["never_priced"] == 1
    assert rows[0]["model"] == UNPRICED_MODEL  # never-priced models first


def check_last_failed_runs(rows):
    usage = {u.run_id: u for u in FAILED}
    failures = sorted(
        (e for e in EVENTS if isinstance(e, RunFailed)), key=lambda e: (-e.occurred_at.timestamp(), e.run_id)
    )
    assert len(failures) > 50  # the LIMIT is exercised
    want = [
        {
            "failed_at": ms(e.occurred_at), "run_id": e.run_id, "agent_id": e.agent_id, "user_id": e.user_id,
            "session_id": e.session_id, "error_type": e.error_type, "error_message": e.error,
            "model": usage[e.run_id].model, "latency_ms": usage[e.run_id].latency_ms,
            "total_tokens": usage[e.run_id].total_tokens, "correlation_id": e.correlation_id,
        }
        for e in failures[:50]
    ]
    assert rows == want  # FINAL hid the slipped duplicate of the latest failure


def check_reconcile_raw_vs_aggregates(rows):
    want = Counter(day(u.occurred_at) for u in USAGE)
    got = {r["day"]: r for r in rows}
    assert got.keys() == want.keys()
    for d, n in want.items():
        g = got[d]
        assert (g["raw_rows"], g["raw_runs"], g["aggregated_runs"], g["difference"]) == (n, n, n, 0), d


def check_platform_per_model_per_day(rows):
    by_key = defaultdict(list)
    for u in USAGE:
        by_key[(day(u.occurred_at), u.model)].append(u)
    got = {(r["day"], r["model"]): r for r in rows}
    assert got.keys() == by_key.keys()
    for key, runs in by_key.items():
        g = got[key]
        assert (g["total_runs"], g["errors"], g["tokens"], g["active_users_est"]) == (
            len(runs), sum(u.status == "failed" for u in runs), sum(u.total_tokens for u in runs),
            len({u.user_id for u in runs}),  # a sketch, exact up to 256 users
        ), key
        assert close(g["cost"], sum(u.cost_usd or 0.0 for u in runs))
        assert rc.quantile_within(g["p95_latency_ms_est"], [u.latency_ms for u in runs], 0.95, abs_tol=ROUNDED_1), key


def check_agents_compared_rollup(rows):
    by_agent = defaultdict(list)
    for u in USAGE:
        by_agent[u.agent_id].append(u)
    got = {r["agent_id"]: r for r in rows}
    assert got.keys() == by_agent.keys()
    for agent, runs in by_agent.items():
        g = got[agent]
        latencies = [u.latency_ms for u in runs]
        assert (g["total_runs"], g["active_users"]) == (len(runs), len({u.user_id for u in runs})), agent
        assert close(g["error_rate"], sum(u.status == "failed" for u in runs) / len(runs), ROUNDED_4)
        assert close(g["avg_latency_ms"], sum(latencies) / len(runs), ROUNDED_1)
        assert rc.quantile_within(g["p95_latency_ms_est"], latencies, 0.95, abs_tol=ROUNDED_1), agent
    assert [r["total_runs"] for r in rows] == sorted((r["total_runs"] for r in rows), reverse=True)


def check_user_usage_per_agent(rows):
    want = defaultdict(lambda: {"sessions_created": 0, "messages_sent": 0, "total_runs": 0, "tokens": 0,
                                "cost": 0.0, "latencies": []})
    for e in EVENTS:
        if e.user_id != "user-1":
            continue
        if isinstance(e, SessionCreated):
            want[e.agent_id]["sessions_created"] += 1
        elif isinstance(e, RunRequested):
            want[e.agent_id]["messages_sent"] += 1
        elif isinstance(e, RunCompleted | SessionDeleted):
            want[e.agent_id]  # makes a row (all zeros for a deletion) even without a run
        elif isinstance(e, UsageRecorded):
            w = want[e.agent_id]
            w["total_runs"] += 1
            w["tokens"] += e.total_tokens
            w["cost"] += e.cost_usd or 0.0
            w["latencies"].append(e.latency_ms)
    got = {r["agent_id"]: r for r in rows}
    assert got.keys() == want.keys()
    for agent, w in want.items():
        g = got[agent]
        assert (g["sessions_created"], g["messages_sent"], g["total_runs"], g["tokens"]) == (
            w["sessions_created"], w["messages_sent"], w["total_runs"], w["tokens"]
        ), agent
        assert close(g["cost"], w["cost"])
        assert close(g["p95_latency_ms"], rc.quantile(w["latencies"], 0.95), ROUNDED_1), agent


CHECKS = {
    "schema": check_schema,
    "cost-per-user-per-day": check_cost_per_user_per_day,
    "tokens-per-agent-model-day": check_tokens_per_agent_model_day,
    "slowest-agents": check_slowest_agents,
    "errors-per-hour-by-type": check_errors_per_hour_by_type,
    "error-spikes": check_error_spikes,
    "success-rate-per-agent": check_success_rate_per_agent,
    "queue-wait-p95-per-hour": check_queue_wait_p95_per_hour,
    "most-active-users": check_most_active_users,
    "sessions-and-messages-per-day": check_sessions_and_messages_per_day,
    "unpriced-usage": check_unpriced_usage,
    "last-failed-runs": check_last_failed_runs,
    "reconcile-raw-vs-aggregates": check_reconcile_raw_vs_aggregates,
    "platform-per-model-per-day": check_platform_per_model_per_day,
    "agents-compared-rollup": check_agents_compared_rollup,
    "user-usage-per-agent": check_user_usage_per_agent,
}


# -- tests -----------------------------------------------------------------------------------------


def test_the_checked_recipes_are_in_the_cookbook():
    # Renaming or dropping a recipe must not silently drop its check.
    assert set(CHECKS) <= set(RECIPES), set(CHECKS) - set(RECIPES)
    for name in ("cost-per-user-per-day", "tokens-per-agent-model-day", "errors-per-hour-by-type"):
        assert name in CHECKS


_RAW_READ = re.compile(r"\bFROM\s+(\w+_raw)\b(?:\s+AS\s+\w+)?(\s+FINAL\b)?", re.IGNORECASE)


@pytest.mark.parametrize("name", list(RECIPES))
def test_raw_table_reads_are_exact_after_a_redelivery(name):
    # The doc's rule: a raw table is read with FINAL, or counted with uniqExact(event_id).
    for table, final in _RAW_READ.findall(RECIPES[name]):
        assert final or "uniqExact(event_id)" in RECIPES[name], f"{name}: {table} without FINAL"


@pytest.mark.parametrize("name", list(RECIPES))
async def test_recipe_runs_through_the_sql_endpoint_and_matches_a_recount(analyst_sql, name):
    result = await analyst_sql.run(RECIPES[name])
    names = [c["name"] for c in result["columns"]]
    assert len(names) == len(set(names)), names
    rows = [dict(zip(names, row, strict=True)) for row in result["rows"]]
    assert rows, f"recipe {name} returned nothing over the generated events"
    if name in CHECKS:
        CHECKS[name](rows)
