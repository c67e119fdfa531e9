"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order on start.

- Every statement is idempotent (``IF NOT EXISTS``), so a migration interrupted half-way is
  simply run again; applied versions are recorded in ``<db>.schema_migrations``.
- ``${db}`` in a file is replaced by the (validated) database name, so tests can run each case
  in its own database of one embedded ClickHouse.
- Retention is configuration, not schema: ``apply_retention`` sets each table's TTL from the
  settings on every start, and only touches a table whose TTL differs (a TTL change rewrites
  parts).

Run alone with ``python -m metrics.migrate``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from string import Template

from clickhouse_connect.driver.client import Client

log = logging.getLogger("agentos.metrics.migrate")

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The file's statements with ``${db}`` filled in. Statements end with ``;`` at the end
        of a line; ``--`` comment lines are dropped (so a comment may contain ``;``)."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        text = Template(text).substitute(db=quote_database(database))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def quote_database(database: str) -> str:
    if not _DATABASE_NAME.match(database):
        raise ValueError(f"invalid database name {database!r}")
    return f"`{database}`"


def load_migrations() -> list[Migration]:
    folder = resources.files("metrics") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {folder}: {versions}")
    return found


def migrate(client: Client, database: str) -> list[int]:
    """Create the database and apply every migration not applied yet. Returns the versions
    applied by this call."""
    db = quote_database(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_migrations
        (
            version UInt32 COMMENT 'NNNN of migrations/NNNN_name.sql',
            name String COMMENT 'name part of the file name',
            checksum String COMMENT 'sha256 of the file when it was applied',
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied'
        )
        ENGINE = ReplacingMergeTree
        ORDER BY version
        COMMENT 'Migrations of the metrics service that ran against this database'"""
    )
    applied = {
        int(version): checksum
        for version, checksum in client.query(
            f"SELECT version, checksum FROM {db}.schema_migrations FINAL"
        ).result_rows
    }
    done = []
    for migration in load_migrations():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                log.warning(
                    "migration %04d_%s changed after it was applied: add a new migration instead",
                    migration.version,
                    migration.name,
                )
            continue
        log.info("applying migration %04d_%s to %s", migration.version, migration.name, database)
        for statement in migration.statements(database):
            client.command(statement)
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration.version)
    return done


#: table -> TTL column. Raw rows expire by ingestion time: a late or replayed event must stay
#: in the duplicate filter for the whole retention, whatever its occurred_at.
RAW_TABLES = ("sessions_raw", "messages_raw", "usage_raw", "run_errors_raw")
#: Aggregates (per-user tables of 0002 and the rollups of 0004), by grain: same retention.
HOURLY_TABLES = ("metrics_hourly", "metrics_user_hourly", "metrics_agent_hourly", "metrics_system_hourly")
DAILY_TABLES = ("metrics_daily", "metrics_user_daily", "metrics_agent_daily", "metrics_system_daily")
_TTL = re.compile(r"\bTTL\s+(\w+)\s*\+\s*toIntervalDay\((\d+)\)")


def retention_plan(raw_days: int, hourly_days: int, daily_days: int) -> dict[str, tuple[str, int]]:
    plan = {table: ("ingested_at", raw_days) for table in RAW_TABLES}
    # The writer's record of finished blocks must outlive the rows of those blocks.
    plan["ingest_blocks"] = ("completed_at", raw_days)
    for table in HOURLY_TABLES:
        plan[table] = ("bucket", hourly_days)
    for table in DAILY_TABLES:
        plan[table] = ("bucket", daily_days)
    return plan


def apply_retention(client: Client, database: str, plan: dict[str, tuple[str, int]]) -> list[str]:
    """Set ``TTL <column> + INTERVAL <days> DAY`` (0 days = no TTL) where it differs.
    Returns the tables changed."""
    db = quote_database(database)
    current = dict(
        client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    )
    changed = []
    for table, (column, days) in plan.items():
        if table not in current:
            continue
        match = _TTL.search(current[table])
        have = (match[1], int(match[2])) if match else None
        if days == 0 and have is not None:
            client.command(f"ALTER TABLE {db}.`{table}` REMOVE TTL")
        elif days > 0 and have != (column, days):
            client.command(f"ALTER TABLE {db}.`{table}` MODIFY TTL {column} + INTERVAL {int(days)} DAY")
        else:
            continue
        if days:
            log.info("retention of %s.%s set to %d days", database, table, days)
        else:
            log.info("retention of %s.%s removed (rows are kept for ever)", database, table)
        changed.append(table)
    return changed


def main() -> None:  # pragma: no cover - thin CLI
    from metrics.clickhouse import connect, resolve_target
    from metrics.settings import MetricsSettings

    settings = MetricsSettings()
    logging.basicConfig(level=settings.log_level.upper())
    target = resolve_target(settings)
    client = connect(target)
    applied = migrate(client, target.database)
    apply_retention(
        client,
        target.database,
        retention_plan(
            settings.raw_retention_days, settings.hourly_retention_days, settings.daily_retention_days
        ),
    )
    print(f"{target.describe()}: applied {applied or 'nothing'}")


if __name__ == "__main__":  # pragma: no cover
    main()
