"""agno's conversation store, read through a bounded window.

agno keeps one row per run (its runs table, indexed by ``(session_id, run_index)``), but every
run loads its session with *all* its runs: per-run cost grew with session length although only
the last ``history_runs`` runs reach the model. ``WindowedSqliteDb`` / ``WindowedPostgresDb``
fetch just the window instead, with the filters agno's history builder applies before it counts
runs (no member sub-runs, no error/cancelled/paused runs), so the model sees exactly the
messages it saw before. Storage is unchanged: every run of a session stays under its one agno
session id (an AgentOS reading the same database sees whole sessions). Only agno's full read
of an agent session as objects is windowed (in the runner: the read every run starts with);
reads for raw rows (``deserialize=False``) or with a ``runs_limit`` of their own take other
paths and get everything they asked for.

The window is applied in ``_get_session_run_rows``, the query behind agno's per-turn read path,
so the rest of that path (session row, the cache that builds each stored run object once) stays
agno's. It is a private method of the pinned agno version; tests/unit/runner/test_history_window.py
fails if it stops being called.

The one thing agno derives from the loaded run list is ``run_index``, the new run's position in
``session.runs``, which would be wrong for a partial list. Runs are therefore saved without it
and the adapter assigns ``max(run_index) + 1`` of the session on insert (an update keeps the
stored index): the number the full list would have given.
"""

from __future__ import annotations

import json
from typing import Any

from agno.db.postgres import AsyncPostgresDb
from agno.db.sqlite import AsyncSqliteDb
from agno.db.utils import HISTORY_SKIP_STATUSES
from sqlalchemy import Table, Text, or_, select


class _WindowedRuns:
    """Mixin over an agno async db adapter; ``history_window`` >= the agent's num_history_runs."""

    def __init__(self, *args: Any, history_window: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history_window = history_window

    async def _get_session_run_rows(self, sess: Any, runs_table: Table, session_id: str) -> list[tuple[str, str]]:
        runs = runs_table.c
        stmt = (
            select(runs.run_id, runs.run_data.cast(Text))
            .where(runs.session_id == session_id, runs.parent_run_id.is_(None),
                   or_(runs.status.is_(None), runs.status.notin_(HISTORY_SKIP_STATUSES)))
            .order_by(runs.run_index.desc(), runs.created_at.desc(), runs.run_id.desc())
            .limit(self.history_window)
        )
        rows = (await sess.execute(stmt)).fetchall()
        # Oldest first, as agno's full read returns them; raw text, as its run-object cache expects.
        return [(run_id, data if isinstance(data, str) else json.dumps(data)) for run_id, data in reversed(rows)]

    async def upsert_run(self, run: Any, session_id: str, user_id: str | None = None, run_index: int | None = None) -> None:
        # agno computed run_index as a position in the (partial) loaded list: let the adapter
        # assign the next index of the session instead (kept as is when the run already exists).
        await super().upsert_run(run, session_id, user_id=user_id, run_index=None)  # type: ignore[misc]


class WindowedSqliteDb(_WindowedRuns, AsyncSqliteDb):
    pass


class WindowedPostgresDb(_WindowedRuns, AsyncPostgresDb):
    pass


def make_engine(url: str):
    """One engine for agno's tables and ours. SQLite (the embedded default) gets WAL and a
    busy timeout: hundreds of concurrent runs write to it, and without them writers fail with
    "database is locked" instead of waiting their turn."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    if url.startswith("sqlite"):
        from agno.db.utils import json_serializer

        # One connection, shared in turn: SQLite has one writer anyway, and a transaction that
        # reads then writes (agno's upserts) fails at once with "database is locked" when another
        # connection holds the write lock — busy_timeout does not help there. Serialising on the
        # pool makes concurrent runs queue for a few milliseconds instead of failing.
        engine = create_async_engine(url, json_serializer=json_serializer, connect_args={"timeout": 60},
                                     pool_size=1, max_overflow=0, pool_timeout=600)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    return None  # Postgres: agno builds its own pooled engine from the URL


def make_agno_db(url: str, engine=None, history_window: int | None = None):
    """agno's async db for ``url``; with ``history_window`` the run path loads only that many
    runs (the runner), without it agno's own behaviour (the AgentOS reference peer)."""
    windowed = {} if history_window is None else {"history_window": history_window}
    if url.startswith("sqlite"):
        adapter = WindowedSqliteDb if windowed else AsyncSqliteDb
        return adapter(db_engine=engine, **windowed) if engine is not None else adapter(db_url=url, **windowed)
    adapter = WindowedPostgresDb if windowed else AsyncPostgresDb
    return adapter(db_url=url, **windowed)
