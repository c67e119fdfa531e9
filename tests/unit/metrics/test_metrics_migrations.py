"""Numbered migrations on the real ClickHouse engine (chdb): idempotent, recorded, commented."""

from __future__ import annotations

import math

import pytest
from metrics.migrate import apply_retention, load_migrations, migrate, retention_plan
from metrics.testing import drop_database, fresh_database

EXPECTED_TABLES = {
    "schema_migrations", "sessions_raw", "messages_raw", "usage_raw", "run_errors_raw",
    "ingest_blocks",  # 0005: the writer's record of finished insert blocks
    "metrics_hourly", "metrics_daily", "mv_sessions_hourly", "mv_sessions_daily",
    "mv_messages_hourly", "mv_messages_daily", "mv_usage_hourly", "mv_usage_daily",
    # 0004 (re-created by 0006): rollups (by user first; by agent and model; by model) and their views
    *(f"metrics_{family}_{grain}" for family in ("user", "agent", "system") for grain in ("hourly", "daily")),
    *(
        f"mv_{source}_{family}_{grain}"
        for source in ("sessions", "messages", "usage")
        for family in ("user", "agent", "system")
        for grain in ("hourly", "daily")
    ),
}
HOURLY = {"metrics_hourly", "metrics_user_hourly", "metrics_agent_hourly", "metrics_system_hourly"}
DAILY = {"metrics_daily", "metrics_user_daily", "metrics_agent_daily", "metrics_system_daily"}


@pytest.fixture
def empty_db(ch_client):
    name = fresh_database(ch_client, migrated=False)
    yield name
    drop_database(ch_client, name)


def tables(client, db):
    return dict(client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}", parameters={"db": db}
    ).result_rows)


class TestMigrate:
    def test_files_are_numbered_without_gaps(self):
        versions = [m.version for m in load_migrations()]
        assert versions == list(range(1, len(versions) + 1))

    def test_creates_every_table_and_records_each_migration(self, ch_client, empty_db):
        applied = migrate(ch_client, empty_db)
        assert applied == [m.version for m in load_migrations()]
        assert set(tables(ch_client, empty_db)) == EXPECTED_TABLES
        recorded = ch_client.query(
            f"SELECT version, name FROM {empty_db}.schema_migrations ORDER BY version"
        ).result_rows
        assert recorded == [(m.version, m.name) for m in load_migrations()]

    def test_running_twice_changes_nothing(self, ch_client, empty_db):
        migrate(ch_client, empty_db)
        before = tables(ch_client, empty_db)
        assert migrate(ch_client, empty_db) == []
        assert tables(ch_client, empty_db) == before
        count = ch_client.query(f"SELECT count() FROM {empty_db}.schema_migrations").result_rows[0][0]
        assert count == len(load_migrations())

    def test_a_migration_interrupted_half_way_is_completed_on_the_next_start(self, ch_client, empty_db):
        migrate(ch_client, empty_db)
        ch_client.command(f"DROP TABLE {empty_db}.mv_usage_daily SYNC")
        ch_client.command(
            f"ALTER TABLE {empty_db}.schema_migrations DELETE WHERE version = 3 SETTINGS mutations_sync = 1"
        )
        assert migrate(ch_client, empty_db) == [3]
        assert "mv_usage_daily" in tables(ch_client, empty_db)

    def test_every_table_and_stored_column_has_a_comment(self, ch_client, empty_db):
        migrate(ch_client, empty_db)
        uncommented_tables = ch_client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND comment = ''",
            parameters={"db": empty_db},
        ).result_rows
        assert uncommented_tables == []
        uncommented_columns = ch_client.query(
            "SELECT table, name FROM system.columns WHERE database = {db:String} AND comment = '' "
            "AND table NOT LIKE 'mv\\_%'",  # a view's columns are its SELECT's
            parameters={"db": empty_db},
        ).result_rows
        assert uncommented_columns == []

    def test_insert_deduplication_is_enabled_on_raw_tables_and_every_mv_target(self, ch_client, empty_db):
        migrate(ch_client, empty_db)
        for name, engine in tables(ch_client, empty_db).items():
            if name.endswith("_raw") or name.startswith("metrics_"):
                assert "non_replicated_deduplication_window = 10000" in engine, name


class TestRetention:
    def test_sets_ttls_from_settings_once(self, ch_client, metrics_db):
        plan = retention_plan(90, 180, 0)
        assert set(apply_retention(ch_client, metrics_db, plan)) == {
            "sessions_raw", "messages_raw", "usage_raw", "run_errors_raw", "ingest_blocks", *HOURLY,
        }
        assert apply_retention(ch_client, metrics_db, plan) == []
        engines = tables(ch_client, metrics_db)
        assert "TTL ingested_at + toIntervalDay(90)" in engines["usage_raw"]
        # a finished-block record lives as long as the raw rows of its block
        assert "TTL completed_at + toIntervalDay(90)" in engines["ingest_blocks"]
        for table in HOURLY:
            assert "TTL bucket + toIntervalDay(180)" in engines[table], table
        for table in DAILY:
            assert "TTL" not in engines[table], table

    def test_zero_days_removes_a_ttl(self, ch_client, metrics_db):
        apply_retention(ch_client, metrics_db, retention_plan(90, 180, 400))
        assert set(apply_retention(ch_client, metrics_db, retention_plan(90, 180, 0))) == DAILY
        for table in DAILY:
            assert "TTL" not in tables(ch_client, metrics_db)[table], table


class TestRollupBackfill:
    """0004 on a database that already holds events: the rollups are filled from what is stored,
    and running it again (an interrupted migration) does not count anything twice."""

    SUMS = "sum(sessions), sum(user_messages), sum(assistant_messages), sum(runs), sum(failed_runs), sum(total_tokens), sum(priced_runs)"

    def _sums(self, client, db, table):
        return client.query(f"SELECT {self.SUMS}, round(sum(cost_usd), 9), uniqMerge(users) FROM {db}.{table}").result_rows[0]

    async def test_backfills_an_existing_database_idempotently(self, ch_client, empty_db):
        from datetime import UTC, datetime, timedelta

        from metrics.testing import generate_events
        from metrics.writer import MetricsWriter

        migrate(ch_client, empty_db)
        rollups = [t for t in EXPECTED_TABLES if t.startswith(("metrics_user_", "metrics_agent_", "metrics_system_"))]
        for name in sorted(EXPECTED_TABLES):
            if name.startswith("mv_") and name.count("_") == 3:  # mv_<source>_<family>_<grain>
                ch_client.command(f"DROP TABLE {empty_db}.{name} SYNC")
        for table in rollups:
            ch_client.command(f"DROP TABLE {empty_db}.{table} SYNC")
        ch_client.command(
            f"ALTER TABLE {empty_db}.schema_migrations DELETE WHERE version = 4 SETTINGS mutations_sync = 1"
        )
        events = generate_events(seed=2, sessions=30, users=5, agents=3,
                                 start=datetime(2026, 1, 1, tzinfo=UTC), span=timedelta(days=2))
        await MetricsWriter(ch_client, empty_db).write(events)  # a database as it was before 0004

        for _ in range(2):  # the second run is what a restart after an interruption does
            assert migrate(ch_client, empty_db) == [4]
            for grain in ("hourly", "daily"):
                want = self._sums(ch_client, empty_db, f"metrics_{grain}")
                assert want[3] > 0
                for family in ("user", "agent", "system"):
                    assert self._sums(ch_client, empty_db, f"metrics_{family}_{grain}") == want, (family, grain)
                    states = ch_client.query(
                        f"SELECT countIf(length(arrayFilter(x -> isNaN(x), q)) = 0) FROM "
                        f"(SELECT quantiles{'TDigest' if family != 'user' else ''}Merge(0.5, 0.95, 0.99)"
                        f"(latency_ms_quantiles) AS q FROM {empty_db}.metrics_{family}_{grain})"
                    ).result_rows[0][0]
                    assert states == 1, (family, grain)  # quantiles backfilled too
                    if family != "user":
                        active = ch_client.query(
                            f"SELECT (SELECT uniqMerge(active_users) FROM {empty_db}.metrics_{family}_{grain}), "
                            f"(SELECT uniqMergeIf(users, runs > 0) FROM {empty_db}.metrics_{grain})"
                        ).result_rows[0]
                        assert active[0] == active[1] > 0, (family, grain)
            ch_client.command(
                f"ALTER TABLE {empty_db}.schema_migrations DELETE WHERE version = 4 SETTINGS mutations_sync = 1"
            )


class TestRollupLayout:
    """0006 re-creates the rollups laid out for reads (compact parts, small granules, eager
    merges of the small agent/system tables, distinct-user sketches in metrics_system_*) and
    rebuilds them from what is stored; running it again (an interrupted migration) counts
    nothing twice."""

    SUMS = TestRollupBackfill.SUMS
    ROLLUPS = [f"metrics_{family}_{grain}" for family in ("user", "agent", "system") for grain in ("hourly", "daily")]

    @staticmethod
    def uniq(table: str) -> str:
        return "uniqCombinedMerge(12)" if "_system_" in table else "uniqMerge"

    def _sums(self, client, db, table):
        return client.query(
            f"SELECT {self.SUMS}, round(sum(cost_usd), 9), {self.uniq(table)}(users) FROM {db}.{table}"
        ).result_rows[0]

    def test_rollups_are_compact_with_small_granules_and_small_ones_merge_eagerly(self, ch_client, metrics_db):
        engines = tables(ch_client, metrics_db)
        granules = {"user": 256, "agent": 64, "system": 256}
        for table in self.ROLLUPS:
            family = table.split("_")[1]
            assert f"index_granularity = {granules[family]}" in engines[table], table
            assert "min_bytes_for_wide_part = 1099511627776" in engines[table], table
            eager = "merge_selector_base = 1.5" in engines[table]
            assert eager == (family != "user"), table

    async def test_rebuilds_the_rollups_from_what_is_stored_idempotently(self, ch_client, empty_db):
        from datetime import UTC, datetime, timedelta

        from metrics.testing import generate_events
        from metrics.writer import MetricsWriter

        migrate(ch_client, empty_db)
        events = generate_events(seed=4, sessions=30, users=5, agents=3,
                                 start=datetime(2026, 1, 1, tzinfo=UTC), span=timedelta(days=2))
        await MetricsWriter(ch_client, empty_db).write(events)
        fed = {table: self._sums(ch_client, empty_db, table) for table in self.ROLLUPS}  # by the views

        for _ in range(2):  # the second run is what a restart after an interruption does
            ch_client.command(
                f"ALTER TABLE {empty_db}.schema_migrations DELETE WHERE version = 6 SETTINGS mutations_sync = 1"
            )
            assert migrate(ch_client, empty_db) == [6]
            for table in self.ROLLUPS:
                grain = table.rsplit("_", 1)[1]
                want = self._sums(ch_client, empty_db, f"metrics_{grain}")
                assert want[3] > 0
                assert self._sums(ch_client, empty_db, table) == want == fed[table], table
                if "_user_" not in table:
                    active = ch_client.query(
                        f"SELECT (SELECT {self.uniq(table)}(active_users) FROM {empty_db}.{table}), "
                        f"(SELECT uniqMergeIf(users, runs > 0) FROM {empty_db}.metrics_{grain})"
                    ).result_rows[0]
                    assert active[0] == active[1] > 0, table
                quantiles = "quantiles" if "_user_" in table else "quantilesTDigest"
                rebuilt = ch_client.query(
                    f"SELECT {quantiles}Merge(0.5, 0.95, 0.99)(latency_ms_quantiles) FROM {empty_db}.{table}"
                ).result_rows[0][0]
                assert not any(math.isnan(q) for q in rebuilt), table  # quantiles rebuilt too
