"""The exactly-once proof: events written through the writer in overlapping batches, with
shifting boundaries and repeats (what redelivery looks like), and every number the query API
returns compared with a recount in Python of the unique events.

Real ClickHouse engine (chdb), real materialized views, the real HTTP app.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from clickhouse_connect.driver.exceptions import OperationalError

import metrics_recount as rc
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


def check_report(body: dict, events: list, bucket: str, start: datetime, end: datetime) -> None:
    """Totals, errors_by_type, by_model and every series bucket against the recount."""
    selected = rc.in_window(events, bucket, start, end)
    rc.assert_counters_equal(body["totals"], rc.counters(selected), "totals.")
    assert body["errors_by_type"] == rc.errors_by_type(selected)
    expected_models = {k: v for k, v in rc.by(selected, rc.model_of).items() if k}
    got_models = {entry["model"]: entry for entry in body["by_model"]}
    assert set(got_models) == set(expected_models)
    for model, expected in expected_models.items():
        rc.assert_counters_equal(got_models[model], expected, f"by_model[{model}].")
    expected_series = rc.series(selected, bucket, start, end)
    assert [s["bucket_start"] for s in body["series"]] == [
        s["bucket_start"].strftime("%Y-%m-%dT%H:%M:%SZ") for s in expected_series
    ]
    for got, expected in zip(body["series"], expected_series, strict=True):
        expected = {k: v for k, v in expected.items() if k != "bucket_start"}
        rc.assert_counters_equal(got, expected, f"series[{got['bucket_start']}].")


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
            check_report(body, mine, bucket, START, WINDOW_END)

    async def test_restricted_to_one_user_match_that_users_recount(self, api):
        agent, user = AGENTS[0], USERS[0]
        body = await get(api, f"/v1/metrics/agents/{agent}", user_id=user, **WINDOW)
        assert body["user_id"] == user
        theirs = [e for e in UNIQUE if e.agent_id == agent and e.user_id == user]
        check_report(body, theirs, "day", START, WINDOW_END)

    async def test_a_window_inside_the_data_counts_only_its_buckets(self, api):
        start, end = datetime(2026, 1, 2, 5, 30, tzinfo=UTC), datetime(2026, 1, 2, 17, tzinfo=UTC)
        body = await get(api, f"/v1/metrics/agents/{AGENTS[1]}", bucket="hour",
                         **{"from": "2026-01-02T05:30:00Z", "to": "2026-01-02T17:00:00Z"})
        assert body["from"] == "2026-01-02T05:00:00Z"  # floored to its bucket
        assert len(body["series"]) == 12
        mine = [e for e in UNIQUE if e.agent_id == AGENTS[1]]
        check_report(body, mine, "hour", start, end)

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
            check_report(body, theirs, bucket, START, WINDOW_END)
            expected = rc.by(theirs, lambda e: e.agent_id)
            got = {entry["agent_id"]: entry for entry in body["by_agent"]}
            assert set(got) == set(expected)
            for agent, counts in expected.items():
                rc.assert_counters_equal(got[agent], counts, f"{user}.by_agent[{agent}].")


class TestSystemMetrics:
    async def test_match_a_recount_with_active_users_error_rate_and_top_agents(self, api):
        body = await get(api, "/v1/metrics/system", **WINDOW)
        check_report(body, UNIQUE, "day", START, WINDOW_END)
        assert body["totals"]["active_users"] == len({e.user_id for e in UNIQUE if type(e).__name__ == "UsageRecorded"})
        expected = rc.by(UNIQUE, lambda e: e.agent_id)
        got = {entry["agent_id"]: entry for entry in body["top_agents"]}
        assert set(got) == set(expected)
        for agent, counts in expected.items():
            rc.assert_counters_equal(got[agent], counts, f"top_agents[{agent}].")
        runs = [entry["runs"] for entry in body["top_agents"]]
        assert runs == sorted(runs, reverse=True)

    async def test_top_agents_is_limited(self, api):
        body = await get(api, "/v1/metrics/system", top=1, **WINDOW)
        assert len(body["top_agents"]) == 1
        assert body["top_agents"][0]["runs"] == max(
            rc.counters([e for e in UNIQUE if e.agent_id == a])["runs"] for a in AGENTS
        )


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
    return client.query(
        f"SELECT (SELECT sum(runs) FROM {db}.metrics_hourly), (SELECT sum(runs) FROM {db}.metrics_daily)"
    ).result_rows[0]


def usage_count(events) -> int:
    return sum(type(e).__name__ == "UsageRecorded" for e in rc.unique(events))


def assert_stored_exactly_once(client, db, events) -> None:
    """Every raw table holds each event once and the aggregates count each once."""
    unique = rc.unique(events)
    for table, rows in rows_by_table(unique).items():
        assert client.query(f"SELECT count() FROM {db}.{table}").result_rows[0][0] == len(rows), table
    want = rc.counters(unique)
    for grain in ("metrics_hourly", "metrics_daily"):
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
        assert flaky.failed == {table: 2 for table in TABLES}
        assert_stored_exactly_once(ch_client, db, SAMPLE)

    async def test_a_failing_clickhouse_is_retried_until_it_takes_the_batch(self, ch_client, db):
        flaky = FlakyClient(ch_client, failures=3, after=False)
        writer = MetricsWriter(flaky, db, retry=FAST)
        await writer.write(SAMPLE)
        assert writer.stats.failed_attempts == 3 * len(TABLES)
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
