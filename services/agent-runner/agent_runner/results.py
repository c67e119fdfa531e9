"""Finished runs, so a redelivered ``RunRequested`` re-emits its stored events instead of
calling the model again (a crash between finishing a run and committing its offset is the
normal way this happens). Lives in the runner's own database next to agno's tables.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.events import Event, decode, encode

metadata = MetaData()

finished_runs = Table(
    "agentos_finished_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    # The terminal and usage events exactly as first published (same event ids), one per line.
    Column("events", Text, nullable=False),
    Column("finished_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


class ResultStore:
    def __init__(self, url: str, engine: AsyncEngine | None = None) -> None:
        kwargs = {"pool_size": 20, "max_overflow": 20} if url.startswith("postgresql") else {}
        self.engine: AsyncEngine = engine or create_async_engine(url, **kwargs)
        self._dialect = self.engine.dialect.name

    async def create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def get(self, run_id: str) -> list[Event] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(finished_runs.c.events).where(finished_runs.c.run_id == run_id))).first()
        if row is None:
            return None
        return [decode(line) for line in row[0].splitlines() if line]

    async def put(self, run_id: str, status: str, events: list[Event]) -> None:
        payload = "\n".join(encode(e).decode() for e in events)
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        stmt = insert(finished_runs).values(run_id=run_id, status=status, events=payload).on_conflict_do_nothing()
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def close(self) -> None:
        await self.engine.dispose()
