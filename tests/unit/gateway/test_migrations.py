"""The Alembic migrations build exactly the schema the ORM models describe."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from gateway.db.engine import migrate
from gateway.db.models import Base
from sqlalchemy import create_engine, inspect


def test_migrated_sqlite_schema_matches_the_models(tmp_path):
    path = tmp_path / "gateway.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        # the concurrent-run count must not scan a user's whole history (0002)
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("runs")}
        assert indexes["ix_runs_user_status"] == ["user_id", "status"]
    engine.dispose()
