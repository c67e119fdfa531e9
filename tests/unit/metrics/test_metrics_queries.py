"""Query building blocks: windows, the answer cache, the analyst SQL guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from metrics.queries import AnalystSQL, InvalidQuery, InvalidSQL, SqlLimits, TTLCache, jsonable, resolve_window
from metrics.testing import drop_database, fresh_database

NOW = datetime(2026, 3, 10, 15, 42, 7, tzinfo=UTC)


class TestResolveWindow:
    def test_defaults_to_the_last_30_days_in_day_buckets_from_the_start_of_the_first_day(self):
        w = resolve_window(days=None, from_=None, to=None, bucket="day", now=NOW)
        assert (w.start, w.end, w.days, w.relative) == (datetime(2026, 2, 8, tzinfo=UTC), NOW, 30, True)
        assert len(w.bucket_starts()) == 31

    def test_hour_buckets_start_at_the_hour(self):
        w = resolve_window(days=1, from_=None, to=None, bucket="hour", now=NOW)
        assert w.start == datetime(2026, 3, 9, 15, tzinfo=UTC)
        assert len(w.bucket_starts()) == 25

    def test_from_wins_over_days_because_the_gateway_always_sends_days(self):
        w = resolve_window(days=30, from_=datetime(2026, 3, 1), to=datetime(2026, 3, 3), bucket="day", now=NOW)
        assert (w.start, w.end, w.days, w.relative) == (
            datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC), 2.0, False,
        )

    def test_to_alone_looks_back_days_from_it(self):
        w = resolve_window(days=2, from_=None, to=datetime(2026, 3, 3, tzinfo=UTC), bucket="day", now=NOW)
        assert w.start == datetime(2026, 3, 1, tzinfo=UTC)

    def test_naive_times_are_utc_and_offsets_are_converted(self):
        w = resolve_window(days=None, from_=datetime(2026, 3, 1, 10, tzinfo=UTC) + timedelta(),
                           to=datetime.fromisoformat("2026-03-01T12:30:00+02:00"), bucket="hour", now=NOW)
        assert w.end == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)

    @pytest.mark.parametrize("kwargs, field", [
        ({"days": 0}, "days"),
        ({"days": 4000}, "days"),
        ({"bucket": "week"}, "bucket"),
        ({"from_": datetime(2026, 3, 5, tzinfo=UTC), "to": datetime(2026, 3, 1, tzinfo=UTC)}, "from"),
        ({"from_": datetime(2026, 3, 1, tzinfo=UTC), "to": datetime(2026, 3, 1, tzinfo=UTC)}, "from"),
        ({"days": 365, "bucket": "hour"}, "bucket"),
        ({"to": datetime(1, 1, 1, tzinfo=UTC)}, "to"),
        ({"from_": datetime(9999, 12, 31, tzinfo=UTC)}, "from"),
        ({"from_": datetime(1999, 12, 1, tzinfo=UTC), "to": datetime(2000, 1, 2, tzinfo=UTC)}, "from"),
    ])
    def test_refuses_bad_windows(self, kwargs, field):
        args = {"days": None, "from_": None, "to": None, "bucket": "day", "now": NOW} | kwargs
        with pytest.raises(InvalidQuery) as err:
            resolve_window(**args)
        assert err.value.field == field


class TestTTLCache:
    def test_answers_until_the_ttl_passes(self):
        clock = [0.0]
        cache = TTLCache(5, clock=lambda: clock[0])
        cache.put("k", {"v": 1})
        clock[0] = 4.9
        assert cache.get("k") == {"v": 1}
        clock[0] = 5.0
        assert cache.get("k") is None

    def test_keeps_at_most_max_entries_dropping_the_least_recently_used(self):
        cache = TTLCache(60, max_entries=2)
        cache.put("a", 1)
        cache.put("b", 2)
        cache.get("a")
        cache.put("c", 3)
        assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)

    def test_a_zero_ttl_disables_it(self):
        cache = TTLCache(0)
        cache.put("a", 1)
        assert cache.get("a") is None


@pytest.fixture(scope="module")
def sql_db(ch_client):
    name = fresh_database(ch_client)
    yield name
    drop_database(ch_client, name)


@pytest.fixture
def sql(ch_client, sql_db):
    return AnalystSQL(ch_client, sql_db, SqlLimits(max_execution_time_s=5, max_result_rows=100))


class TestAnalystSQL:
    @pytest.mark.parametrize("query", [
        "select count() from usage_raw -- a comment",
        "WITH 1 AS x SELECT x",
        "SHOW TABLES",
        "DESCRIBE TABLE metrics_daily",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE usage_raw",
        "SELECT 1;",
    ])
    async def test_runs_read_statements_in_the_metrics_database(self, sql, query):
        result = await sql.run(query)
        assert result["row_count"] == len(result["rows"]) >= 1

    async def test_returns_columns_with_types_and_json_values(self, sql):
        result = await sql.run("SELECT toDateTime64('2026-01-01 00:00:00', 3, 'UTC') AS t, nan AS n, [1, 2] AS a")
        assert result["columns"] == [
            {"name": "t", "type": "DateTime64(3, 'UTC')"}, {"name": "n", "type": "Float64"},
            {"name": "a", "type": "Array(UInt8)"},
        ]
        assert result["rows"] == [["2026-01-01T00:00:00Z", None, [1, 2]]]

    @pytest.mark.parametrize("query, message", [
        ("DROP TABLE usage_raw", "only read statements"),
        ("INSERT INTO usage_raw (event_id) VALUES ('x')", "only read statements"),
        ("WITH 1 AS x INSERT INTO usage_raw (event_id) SELECT 'x'", "only read statements"),
        ("ALTER TABLE usage_raw DELETE WHERE 1", "only read statements"),
        ("SELECT 1; DROP TABLE usage_raw", "Multi-statements"),
        ("DROP TABLE usage_raw; SELECT 1", "Multi-statements"),
        ("SELECT $$'$$; DROP TABLE usage_raw; --'", "Multi-statements"),
        ("SELECT 1 INTO OUTFILE '/tmp/x.csv'", "INTO OUTFILE"),
        ("SELECT 1 SETTINGS readonly = 0", "readonly"),
        ("SELECT * FROM file('/etc/hostname', LineAsString)", "readonly"),
        ("SELECT * FROM numbers(1000)", "max rows"),
        ("SELEC 1", "Syntax error"),
        ("   ", "empty"),
    ])
    async def test_refuses_writes_tricks_and_oversized_results(self, sql, ch_client, sql_db, query, message):
        with pytest.raises(InvalidSQL, match=message):
            await sql.run(query)
        # nothing changed and the shared connection did not become read-only
        ch_client.command(f"INSERT INTO {sql_db}.schema_migrations (version, name, checksum) VALUES (999, 'probe', '')")
        assert ch_client.query(f"EXISTS TABLE {sql_db}.usage_raw").result_rows == [(1,)]

    async def test_refuses_queries_longer_than_the_limit(self, ch_client, sql_db):
        short = AnalystSQL(ch_client, sql_db, SqlLimits(max_query_chars=10))
        with pytest.raises(InvalidSQL, match="longer than"):
            await short.run("SELECT 1 + 1 + 1")


def test_jsonable_turns_clickhouse_values_into_json():
    from decimal import Decimal
    from uuid import UUID

    assert jsonable({"a": (Decimal("1.5"), UUID(int=0), b"x", float("inf"))}) == {
        "a": ["1.5", "00000000-0000-0000-0000-000000000000", "x", None]
    }
