"""The exactly-once proof: events written through the writer in overlapping batches, with
shifting boundaries and repeats (what redelivery looks like), and every number the query API
returns compared with a recount in Python of the unique events.

Real ClickHouse engine (chdb), real materialized views, the real HTTP app.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import metrics_recount as rc
import pytest
import pytest_asyncio
from clickhouse_connect.driver.exceptions import OperationalError
from metrics.api import create_app
from metrics.rows import TABLES, rows_by_table
from metrics.settings import MetricsSettings
from metrics.testing import drop_database, fresh_database, generate_events, overlapping_batches
from metrics.writer import MetricsWriter, RetryPolicy, WriterStopped, dedup_token

START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3)
EVENTS = generate_events(seed=11, sessions=70, users=7, agents=3, start=START, span=SPAN)
UNIQUE = rc.unique(EVENTS)
WINDOW = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-05T00:00:00Z"}
WINDOW_END = datetime(2026, 1, 5, tzinfo=UTC)
AGENTS = sorted({e.agent_id for e in UNIQUE})
USERS = sorted({e.user_id for e in UNIQUE})


def settings(**overrides) -> MetricsSettings:
    # No answer cache: every request must reflect what is stored right now.
    # Fixed 2026-01 data: no TTL may expire it, whatever the clock says.
    return MetricsSettings(query_cache_ttl_s=0, hourly_retention_days=0, **overrides)


@pytest_asyncio.fixture(scope="module")
async def loaded_db(ch_client):
    """A database filled through the writer with every event delivered 2-4 times."""
    db = fresh_database(ch_client)
    writer = MetricsWriter(ch_client, db)
    batches = list(overlapping_batches(EVENTS, seed=3))
    deliveries = sum(len(b) for b in batches)
    assert deliveries > 2 * len(EVENTS)  # the redelivery really happened
    for batch in batches:
        await writer.write(batch)
    yield db
    drop_database(ch_client, db)


@pytest_asyncio.fixture(scope="module")
async def api(ch_client, loaded_db):
    app = create_app(settings(), client=ch_client, database=loaded_db, run_consumer=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://metrics") as client:
            yield client


async def get(api, path, **params):
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def approx(value):
    """pytest.approx for nested JSON."""
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9)
    return value


def check_counters(got: dict, events: list, where: str, *, sketched: bool) -> None:
    """Exact recount; with ``sketched`` (answers from the t-digest rollups without user_id) the
    p50/p95/p99 fields only within 1 % in rank, every other counter still exactly."""
    if sketched:
        rc.assert_counters_close(got, events, where)
    else:
        rc.assert_counters_equal(got, rc.counters(events), where)


def check_report(body: dict, events: list, bucket: str, start: datetime, end: datetime, *, sketched: bool) -> None:
    """Totals, errors_by_type, by_model and every series bucket against the recount."""
    selected = rc.in_window(events, bucket, start, end)
    check_counters(body["totals"], selected, "totals.", sketched=sketched)
    assert body["errors_by_type"] == rc.errors_by_type(selected)
    expected_models = {k: v for k, v in rc.by(selected, rc.model_of).items() if k}
    got_models = {entry["model"]: entry for entry in body["by_model"]}
    assert set(got_models) == set(expected_models)
    for model, expected in expected_models.items():
        assert got_models[model]["errors_by_type"] == expected["errors_by_type"]
        mine = [e for e in selected if rc.model_of(e) == model]
        check_counters(got_models[model], mine, f"by_model[{model}].", sketched=sketched)
    expected_series = rc.series(selected, bucket, start, end)
    assert [s["bucket_start"] for s in body["series"]] == [
        s["bucket_start"].strftime("%Y-%m-%dT%H:%M:%SZ") for s in expected_series
    ]
    for got, expected in zip(body["series"], expected_series, strict=True):
        mine = [e for e in selected if rc.floor(e.occurred_at, bucket) == expected["bucket_start"]]
        check_counters(got, mine, f"series[{got['bucket_start']}].", sketched=sketched)


class TestRawTables:
    def test_hold_every_event_exactly_once_even_before_merges(self, ch_client, loaded_db):
        expected = {table: len(rows) for table, rows in rows_by_table(UNIQUE).items()}
        for table in TABLES:
            count, distinct = ch_client.query(
                f"SELECT count(), uniqExact(event_id) FROM {loaded_db}.{table}"
            ).result_rows[0]
            assert count == distinct == expected[table], table


class TestAgentMetrics:
    @pytest.mark.parametrize("bucket", ["day", "hour"])
    async def test_match_a_recount_of_the_unique_events(self, api, bucket):
        for agent in AGENTS:
            body = await get(api, f"/v1/metrics/agents/{agent}", bucket=bucket, **WINDOW)
            assert body["agent_id"] == agent and body["bucket"] == bucket
            mine = [e for e in UNIQUE if e.agent_id == agent]
            check_report(body, mine, bucket, START, WINDOW_END, sketched=True)

    async def test_restricted_to_one_user_match_that_users_recount(self, api):
        agent, user = AGENTS[0], USERS[0]
        body = await get(api, f"/v1/metrics/agents/{agent}", user_id=user, **WINDOW)
        assert body["user_id"] == user
        theirs = [e for e in UNIQUE if e.agent_id == agent and e.user_id == user]
        check_report(body, theirs, "day", START, WINDOW_END, sketched=False)

    async def test_a_window_inside_the_data_counts_only_its_buckets(self, api):
        start, end = datetime(2026, 1, 2, 5, 30, tzinfo=UTC), datetime(2026, 1, 2, 17, tzinfo=UTC)
        body = await get(api, f"/v1/metrics/agents/{AGENTS[1]}", bucket="hour",
                         **{"from": "2026-01-02T05:30:00Z", "to": "2026-01-02T17:00:00Z"})
        assert body["from"] == "2026-01-02T05:00:00Z"  # floored to its bucket
        assert len(body["series"]) == 12
        mine = [e for e in UNIQUE if e.agent_id == AGENTS[1]]
        check_report(body, mine, "hour", start, end, sketched=True)

    async def test_an_agent_without_events_has_zero_counts_and_no_averages(self, api):
        body = await get(api, "/v1/metrics/agents/nobody", **WINDOW)
        assert body["totals"]["runs"] == 0 and body["totals"]["avg_latency_ms"] is None
        assert body["by_model"] == [] and body["errors_by_type"] == {}
        assert all(s["messages"] == 0 for s in body["series"])


class TestUserMetrics:
    @pytest.mark.parametrize("bucket", ["day", "hour"])
    async def test_match_a_recount_including_the_per_agent_breakdown(self, api, bucket):
        for user in USERS:
            body = await get(api, f"/v1/metrics/users/{user}", bucket=bucket, **WINDOW)
            theirs = [e for e in UNIQUE if e.user_id == user]
            check_report(body, theirs, bucket, START, WINDOW_END, sketched=False)
            expected = rc.by(theirs, lambda e: e.agent_id)
            got = {entry["agent_id"]: entry for entry in body["by_agent"]}
            assert set(got) == set(expected)
            for agent, counts in expected.items():
                rc.assert_counters_equal(got[agent], counts, f"{user}.by_agent[{agent}].")


class TestSystemMetrics:
    async def test_match_a_recount_with_active_users_error_rate_and_top_agents(self, api):
        body = await get(api, "/v1/metrics/system", **WINDOW)
        check_report(body, UNIQUE, "day", START, WINDOW_END, sketched=True)
        assert body["totals"]["active_users"] == len({e.user_id for e in UNIQUE if type(e).__name__ == "UsageRecorded"})
        expected = rc.by(UNIQUE, lambda e: e.agent_id)
        got = {entry["agent_id"]: entry for entry in body["top_agents"]}
        assert set(got) == set(expected)
        for agent, counts in expected.items():
            assert got[agent]["errors_by_type"] == counts["errors_by_type"]
            mine = [e for e in UNIQUE if e.agent_id == agent]
            check_counters(got[agent], mine, f"top_agents[{agent}].", sketched=True)
        runs = [entry["runs"] for entry in body["top_agents"]]
        assert runs == sorted(runs, reverse=True)

    async def test_top_agents_is_limited(self, api):
        body = await get(api, "/v1/metrics/system", top=1, **WINDOW)
        assert len(body["top_agents"]) == 1
        assert body["top_agents"][0]["runs"] == max(
            rc.counters([e for e in UNIQUE if e.agent_id == a])["runs"] for a in AGENTS
        )


#: Every MV target: the per-user aggregates of 0002 and the rollups (0004, re-laid out by 0006),
#: with their keys (bucket first).
AGGREGATES = {
    "metrics_hourly": ("hour", ("agent_id", "user_id", "model")),
    "metrics_daily": ("day", ("agent_id", "user_id", "model")),
    "metrics_user_hourly": ("hour", ("user_id", "agent_id", "model")),
    "metrics_user_daily": ("day", ("user_id", "agent_id", "model")),
    "metrics_agent_hourly": ("hour", ("agent_id", "model")),
    "metrics_agent_daily": ("day", ("agent_id", "model")),
    "metrics_system_hourly": ("hour", ("model",)),
    "metrics_system_daily": ("day", ("model",)),
}
#: How each table's distinct-user states are read: uniq, except the system rollups' sketches.
UNIQ_MERGE = {"metrics_system_hourly": "uniqCombinedMerge(12)", "metrics_system_daily": "uniqCombinedMerge(12)"}


def uniq_merge(table: str) -> str:
    return UNIQ_MERGE.get(table, "uniqMerge")


_EXACT_SQL = (
    "sum(sessions), sum(user_messages), sum(assistant_messages), sum(runs), sum(completed_runs), "
    "sum(failed_runs), sum(cancelled_runs), sum(input_tokens), sum(output_tokens), sum(total_tokens), "
    "sum(cached_tokens), sum(reasoning_tokens), sum(priced_runs), sum(cost_usd), sumMap(errors_by_type), "
    "uniqExactMerge(users)"
)


def recount_key(event, bucket: str, keys: tuple[str, ...]) -> tuple:
    values = {"agent_id": event.agent_id, "user_id": event.user_id, "model": rc.model_of(event)}
    return (rc.floor(event.occurred_at, bucket).replace(tzinfo=None), *(values[k] for k in keys))


def exact_recount(events: list) -> tuple:
    c = rc.counters(events)
    return (
        c["sessions"], c["user_messages"], c["assistant_messages"], c["runs"], c["completed_runs"], c["errors"],
        c["cancelled_runs"], c["input_tokens"], c["output_tokens"], c["total_tokens"], c["cached_tokens"],
        c["reasoning_tokens"], c["priced_runs"], c["cost"], rc.errors_by_type(events), c["unique_users"],
    )


COUNTED = ("SessionCreated", "RunRequested", "RunCompleted", "UsageRecorded")


def counted_groups(events: list, bucket: str, keys: tuple[str, ...]) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for event in events:
        if type(event).__name__ in COUNTED:
            groups.setdefault(recount_key(event, bucket, keys), []).append(event)
    return groups


def assert_rows_match_recount(got_rows: list, events: list, bucket: str, keys: tuple[str, ...], table: str) -> None:
    groups = counted_groups(events, bucket, keys)
    # SessionDeleted rows aggregate to all-zero rows: nothing to count there.
    got = {tuple(row[: 1 + len(keys)]): row[1 + len(keys):] for row in got_rows if any(row[1 + len(keys):])}
    assert set(got) == set(groups), table
    for key, members in groups.items():
        want = exact_recount(members)
        have = got[key]
        assert have[:13] == want[:13], (table, key)
        assert have[13] == pytest.approx(want[13], rel=1e-9, abs=1e-12), (table, key)
        assert {k: v for k, v in have[14].items() if v} == want[14], (table, key)
        assert have[15] == want[15], (table, key)


class TestAggregateTables:
    """Every MV target, read directly (rows of a key may still be unmerged: GROUP BY), against
    the recount, key by key - the rollups without user_id included."""

    @pytest.mark.parametrize("table", list(AGGREGATES))
    def test_every_key_matches_the_recount(self, ch_client, loaded_db, table):
        bucket, keys = AGGREGATES[table]
        # uniqExactMerge cannot read uniq / uniqCombined states: compare distinct users via
        # uniqMerge / uniqCombinedMerge, which are exact at these sizes (a handful of users per key).
        sql = (
            f"SELECT bucket, {', '.join(keys)}, {_EXACT_SQL.replace('uniqExactMerge', uniq_merge(table))} "
            f"FROM {loaded_db}.{table} GROUP BY bucket, {', '.join(keys)}"
        )
        rows = ch_client.query(sql).result_rows
        assert_rows_match_recount(rows, UNIQUE, bucket, keys, table)

    @pytest.mark.parametrize("table", [t for t in AGGREGATES if "agent_" in t or "system_" in t])
    def test_rollups_count_active_users_and_estimate_quantiles(self, ch_client, loaded_db, table):
        bucket, keys = AGGREGATES[table]
        rows = ch_client.query(
            f"SELECT bucket, {', '.join(keys)}, {uniq_merge(table)}(active_users), "
            f"quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms_quantiles) "
            f"FROM {loaded_db}.{table} GROUP BY bucket, {', '.join(keys)}"
        ).result_rows
        groups = counted_groups(UNIQUE, bucket, keys)
        assert set(groups) <= {tuple(r[: 1 + len(keys)]) for r in rows}
        for row in rows:
            members = groups.get(tuple(row[: 1 + len(keys)]), [])
            usage = [e for e in members if type(e).__name__ == "UsageRecorded"]
            assert row[-2] == len({u.user_id for u in usage}), (table, row[:3])
            latencies = [u.latency_ms for u in usage]
            for q, got in zip((0.5, 0.95, 0.99), row[-1], strict=True):
                assert rc.quantile_within(got if usage else None, latencies, q), (table, row[:3], q, got)


class TestRedeliveryAfterTheFact:
    async def test_writing_everything_again_changes_no_answer(self, api, ch_client, loaded_db):
        before = await get(api, "/v1/metrics/system", bucket="hour", **WINDOW)
        result = await MetricsWriter(ch_client, loaded_db).write(list(reversed(EVENTS)))
        assert result.inserted == {} and result.duplicates == sum(len(r) for r in rows_by_table(UNIQUE).values())
        # Background merges may re-associate float sums between the two reads: compare closely.
        assert await get(api, "/v1/metrics/system", bucket="hour", **WINDOW) == approx(before)


# -- the insert retry layer (insert_deduplication_token) -------------------------------------------


class FlakyClient:
    """A real client whose inserts into each table fail ``failures`` times, before or after
    the data landed (``after=True`` is the ambiguous failure: a timeout on a write that did
    happen)."""

    def __init__(self, client, failures: int, *, after: bool) -> None:
        self._client, self._failures, self._after = client, failures, after
        self.failed: dict[str, int] = {}

    def __getattr__(self, name):
        return getattr(self._client, name)

    def _should_fail(self, table: str) -> bool:
        if self.failed.get(table, 0) >= self._failures:
            return False
        self.failed[table] = self.failed.get(table, 0) + 1
        return True

    def insert(self, table, *args, **kwargs):
        if not self._after and self._should_fail(table):
            raise OperationalError("injected: connection refused")
        result = self._client.insert(table, *args, **kwargs)
        if self._after and self._should_fail(table):
            raise OperationalError("injected: timed out reading the response")
        return result


@pytest.fixture
def db(ch_client):
    name = fresh_database(ch_client)
    yield name
    drop_database(ch_client, name)


FAST = RetryPolicy(initial_s=0.001, max_s=0.01)
SAMPLE = generate_events(seed=5, sessions=8, start=START, span=timedelta(hours=6))


def aggregate_runs(client, db) -> tuple[int, int]:
    """Runs counted by the hourly and by the daily aggregates; every MV target of a grain must
    agree (per-user tables and rollups), or this fails."""
    out = []
    for grain in ("hourly", "daily"):
        tables = [f"metrics_{grain}"] + [f"metrics_{family}_{grain}" for family in ("user", "agent", "system")]
        counts = client.query(
            "SELECT " + ", ".join(f"(SELECT sum(runs) FROM {db}.{t})" for t in tables)
        ).result_rows[0]
        assert len(set(counts)) == 1, dict(zip(tables, counts, strict=True))
        out.append(counts[0])
    return tuple(out)


def usage_count(events) -> int:
    return sum(type(e).__name__ == "UsageRecorded" for e in rc.unique(events))


def assert_stored_exactly_once(client, db, events) -> None:
    """Every raw table holds each event once and the aggregates count each once."""
    unique = rc.unique(events)
    for table, rows in rows_by_table(unique).items():
        assert client.query(f"SELECT count() FROM {db}.{table}").result_rows[0][0] == len(rows), table
    want = rc.counters(unique)
    for grain in AGGREGATES:
        got = client.query(
            f"SELECT sum(sessions), sum(user_messages) + sum(assistant_messages), sum(runs), "
            f"sum(total_tokens) FROM {db}.{grain}"
        ).result_rows[0]
        assert got == (want["sessions"], want["messages"], want["runs"], want["total_tokens"]), grain


class TestInsertRetries:
    async def test_an_insert_that_landed_but_reported_failure_is_counted_once(self, ch_client, db):
        flaky = FlakyClient(ch_client, failures=2, after=True)
        writer = MetricsWriter(flaky, db, retry=FAST)
        await writer.write(SAMPLE)
        assert flaky.failed == {table: 2 for table in (*TABLES, "ingest_blocks")}
        assert_stored_exactly_once(ch_client, db, SAMPLE)

    async def test_a_failing_clickhouse_is_retried_until_it_takes_the_batch(self, ch_client, db):
        flaky = FlakyClient(ch_client, failures=3, after=False)
        writer = MetricsWriter(flaky, db, retry=FAST)
        await writer.write(SAMPLE)
        assert writer.stats.failed_attempts == 3 * (len(TABLES) + 1)  # + the ingest_blocks record
        assert_stored_exactly_once(ch_client, db, SAMPLE)

    async def test_the_same_block_sent_twice_with_its_token_lands_once_in_raw_and_aggregates(self, ch_client, db):
        # Bypasses the duplicate check: this is the layer that catches a retry (or a race)
        # after the check has passed.
        writer = MetricsWriter(ch_client, db)
        rows = rows_by_table(SAMPLE)["usage_raw"]
        token = dedup_token("usage_raw", (r.event_id for r in rows))
        for _ in range(3):
            await asyncio.to_thread(writer._insert, "usage_raw", rows, token)
        assert ch_client.query(f"SELECT count() FROM {db}.usage_raw").result_rows[0][0] == len(rows)
        assert aggregate_runs(ch_client, db) == (len(rows), len(rows))

    async def test_different_batches_with_identical_aggregates_both_count(self, ch_client, db):
        # Two distinct runs of the same user/agent/model/hour with equal numbers produce equal
        # MV blocks; with the dedup window on MV targets only distinct tokens keep both.
        first, second = [e for e in SAMPLE if type(e).__name__ == "UsageRecorded"][:2]
        twin = second.model_copy(update={
            "occurred_at": first.occurred_at, "user_id": first.user_id, "agent_id": first.agent_id,
            "model": first.model, **{f: getattr(first, f) for f in (
                "status", "error_type", "input_tokens", "output_tokens", "total_tokens", "cached_tokens",
                "reasoning_tokens", "cost_usd", "latency_ms", "ttft_ms", "queue_wait_ms")},
        })
        writer = MetricsWriter(ch_client, db)
        await writer.write([first])
        await writer.write([twin])
        assert aggregate_runs(ch_client, db) == (2, 2)

    async def test_stop_ends_the_retries_without_storing_anything(self, ch_client, db):
        flaky = FlakyClient(ch_client, failures=10**6, after=False)
        writer = MetricsWriter(flaky, db, retry=RetryPolicy(initial_s=0.01, max_s=0.05))
        task = asyncio.create_task(writer.write(SAMPLE))
        await asyncio.sleep(0.2)
        writer.stop()
        with pytest.raises(WriterStopped):
            await task
        assert aggregate_runs(ch_client, db) == (0, 0)


# -- interrupted inserts (layer 4: ingest_token + ingest_blocks) ------------------------------------


def views_reading(client, db: str, table: str) -> list[str]:
    """The materialized views fed by ``table``."""
    return client.query(
        "SELECT dependencies_table FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": db, "t": table},
    ).result_rows[0][0]


class CrashBeforeBookkeeping(MetricsWriter):
    """A writer killed after its inserts and before it recorded the blocks as finished."""

    def _record_finished(self, blocks) -> None:
        return None


class TestInterruptedInsert:
    async def test_a_block_in_the_raw_table_but_not_in_every_view_is_completed_on_redelivery(self, ch_client, db):
        # What a kill -9 during an insert leaves (measured): the raw part is committed, then
        # the MV targets one by one. Simulated exactly by detaching some of the views.
        detached = []
        for table in TABLES:
            views = views_reading(ch_client, db, table)
            detached += views[::2]
        assert len(detached) >= 4
        for view in detached:
            ch_client.command(f"DETACH TABLE {db}.`{view}`")
        await CrashBeforeBookkeeping(ch_client, db).write(SAMPLE)
        for view in detached:
            ch_client.command(f"ATTACH TABLE {db}.`{view}`")
        with pytest.raises(AssertionError):  # the simulated crash really lost aggregate rows
            assert_stored_exactly_once(ch_client, db, SAMPLE)

        # Redelivery after the restart, with other batch boundaries and in another order.
        writer = MetricsWriter(ch_client, db)
        middle = len(SAMPLE) // 2
        await writer.write(list(reversed(SAMPLE[:middle])))
        await writer.write(SAMPLE[middle - 5 :])
        assert writer.stats.completed_blocks == len(rows_by_table(SAMPLE))  # one block per table
        assert_stored_exactly_once(ch_client, db, SAMPLE)

        # Once recorded as finished, a further redelivery completes nothing and counts nothing.
        again = MetricsWriter(ch_client, db)
        await again.write(SAMPLE)
        assert again.stats.completed_blocks == 0
        assert_stored_exactly_once(ch_client, db, SAMPLE)

    async def test_a_block_that_reached_every_table_is_completed_without_counting_twice(self, ch_client, db):
        # Killed after every insert but before the bookkeeping: the completion re-sends blocks
        # that are everywhere already; deduplication must drop all of them.
        await CrashBeforeBookkeeping(ch_client, db).write(SAMPLE)
        assert_stored_exactly_once(ch_client, db, SAMPLE)
        writer = MetricsWriter(ch_client, db)
        await writer.write(SAMPLE)
        assert writer.stats.completed_blocks == len(rows_by_table(SAMPLE))
        assert_stored_exactly_once(ch_client, db, SAMPLE)
