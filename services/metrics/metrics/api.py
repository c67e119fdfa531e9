"""HTTP query API (FastAPI). The gateway proxies it after authorizing the caller, so this
service trusts whoever reaches it: it binds to 127.0.0.1 unless told otherwise.

Every error is one JSON envelope: ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from metrics.clickhouse import Client, connect, resolve_target
from metrics.consumer import MetricsConsumer
from metrics.migrate import apply_retention, migrate, retention_plan
from metrics.queries import (
    AnalystSQL,
    InvalidQuery,
    InvalidSQL,
    MetricsQueries,
    SqlLimits,
    TTLCache,
    Window,
    resolve_window,
)
from metrics.settings import MetricsSettings
from metrics.writer import MetricsWriter, RetryPolicy

log = logging.getLogger("agentos.metrics.api")

#: Ids in paths: 1-200 characters, no control characters.
ID_PATTERN = r"^[^\x00-\x1f]{1,200}$"


@dataclass
class Runtime:
    """Everything one running metrics service holds (built in the app lifespan)."""

    settings: MetricsSettings
    client: Client
    database: str
    queries: MetricsQueries
    sql: AnalystSQL
    writer: MetricsWriter
    consumer: MetricsConsumer | None = None
    ready: bool = False


async def start_runtime(
    settings: MetricsSettings, *, client: Client | None = None, database: str | None = None,
    run_consumer: bool = True,
) -> Runtime:
    """Connect, migrate, apply retention, then (optionally) start consuming."""
    if client is None or database is None:
        target = resolve_target(settings)
        database = database or target.database
        if client is None:
            log.info("ClickHouse: %s", target.describe())
            client = await asyncio.to_thread(connect, target)
    await asyncio.to_thread(migrate, client, database)
    await asyncio.to_thread(
        apply_retention,
        client,
        database,
        retention_plan(
            settings.raw_retention_days, settings.hourly_retention_days, settings.daily_retention_days
        ),
    )
    writer = MetricsWriter(
        client,
        database,
        store_content=settings.store_message_content,
        error_max_chars=settings.error_message_max_chars,
        retry=RetryPolicy(settings.retry_initial_backoff_ms / 1000, settings.retry_max_backoff_ms / 1000),
        fault=_fault_from_file(settings.fault_file) if settings.fault_file else None,
    )
    runtime = Runtime(
        settings=settings,
        client=client,
        database=database,
        queries=MetricsQueries(
            client,
            database,
            cache=TTLCache(settings.query_cache_ttl_s, settings.query_cache_max_entries),
        ),
        sql=AnalystSQL(
            client,
            database,
            SqlLimits(
                settings.sql_max_execution_time_s, settings.sql_max_result_rows, settings.sql_max_query_chars
            ),
        ),
        writer=writer,
        ready=True,
    )
    if run_consumer:
        runtime.consumer = MetricsConsumer(settings, writer)
        runtime.consumer.start()
    return runtime


async def stop_runtime(runtime: Runtime, *, close_client: bool = True) -> None:
    runtime.ready = False
    if runtime.consumer is not None:
        await runtime.consumer.close()
    if close_client:
        runtime.client.close()


# -- errors -----------------------------------------------------------------------------------


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(status_code=status, content=body)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")),
             "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        return error_response(422, "invalid_request", "the request parameters are invalid", details)

    @app.exception_handler(InvalidQuery)
    async def _invalid_query(_: Request, exc: InvalidQuery) -> JSONResponse:
        details = [{"field": exc.field, "message": str(exc)}] if exc.field else None
        return error_response(422, "invalid_request", str(exc), details)

    @app.exception_handler(InvalidSQL)
    async def _invalid_sql(_: Request, exc: InvalidSQL) -> JSONResponse:
        return error_response(400, "invalid_sql", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 503: "unavailable"}.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ClickHouseError)
    async def _clickhouse(_: Request, exc: ClickHouseError) -> JSONResponse:
        log.warning("ClickHouse failed a metrics query: %s", exc)
        response = error_response(503, "unavailable", "ClickHouse is not answering; retry shortly")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")


# -- schemas ------------------------------------------------------------------------------------


class SqlRequest(BaseModel):
    query: str = Field(min_length=1, max_length=100_000, description="One read-only statement.")


Days = Annotated[int | None, Query(description="Window = the last N days (default 30).")]
From = Annotated[datetime | None, Query(alias="from", description="Window start, ISO 8601 (UTC if no offset).")]
To = Annotated[datetime | None, Query(description="Window end (exclusive), ISO 8601; default now.")]
BucketParam = Annotated[Literal["day", "hour"], Query(description="Series granularity.")]


# -- app ------------------------------------------------------------------------------------------


def _fault_from_file(path: str):
    """Fault injection for resilience tests: inserts fail while ``path`` exists."""
    from pathlib import Path

    marker = Path(path)

    def fault() -> None:
        if marker.exists():
            raise ConnectionError(f"injected ClickHouse insert failure ({marker} exists)")

    return fault


def create_app(
    settings: MetricsSettings | None = None,
    *,
    client: Client | None = None,
    database: str | None = None,
    run_consumer: bool = True,
) -> FastAPI:
    """The metrics app. Its lifespan connects to ClickHouse, migrates and starts the consumer;
    tests pass an open ``client`` and their own ``database``."""
    settings = settings or MetricsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = await start_runtime(settings, client=client, database=database, run_consumer=run_consumer)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await stop_runtime(runtime, close_client=client is None)

    app = FastAPI(
        title="AgentOS metrics",
        version="1.0.0",
        description="Usage, performance and error metrics of AgentOS agents, from ClickHouse.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)

    def runtime_of(request: Request) -> Runtime:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None or not runtime.ready:
            raise StarletteHTTPException(503, "the metrics service is starting")
        return runtime

    def window(runtime: Runtime, days: int | None, from_: datetime | None, to: datetime | None, bucket: str) -> Window:
        s = runtime.settings
        return resolve_window(
            days=days, from_=from_, to=to, bucket=bucket, max_days=s.max_days, max_points=s.max_series_points
        )

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> dict[str, str]:
        """`{"status": "ok"}` once migrations ran (503 before)."""
        runtime_of(request)
        return {"status": "ok"}

    @app.get("/v1/metrics/agents/{agent_id}", tags=["metrics"])
    async def agent_metrics(
        request: Request,
        agent_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=200)],
        days: Days = None,
        from_: From = None,
        to: To = None,
        bucket: BucketParam = "day",
        user_id: Annotated[
            str | None, Query(pattern=ID_PATTERN, max_length=200, description="Only this user's usage.")
        ] = None,
    ) -> dict[str, Any]:
        """Totals, errors by type, per-model breakdown and a time series for one agent."""
        runtime = runtime_of(request)
        return await runtime.queries.agent(
            agent_id, window(runtime, days, from_, to, bucket), user_id=user_id
        )

    @app.get("/v1/metrics/users/{user_id}", tags=["metrics"])
    async def user_metrics(
        request: Request,
        user_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=200)],
        days: Days = None,
        from_: From = None,
        to: To = None,
        bucket: BucketParam = "day",
    ) -> dict[str, Any]:
        """Totals, per-agent and per-model breakdown and a time series for one user."""
        runtime = runtime_of(request)
        return await runtime.queries.user(user_id, window(runtime, days, from_, to, bucket))

    @app.get("/v1/metrics/system", tags=["metrics"])
    async def system_metrics(
        request: Request,
        days: Days = None,
        from_: From = None,
        to: To = None,
        bucket: BucketParam = "day",
        top: Annotated[int | None, Query(ge=1, le=100, description="Size of top_agents (default 10).")] = None,
    ) -> dict[str, Any]:
        """System-wide totals (with active users and error rate), top agents and a time series."""
        runtime = runtime_of(request)
        return await runtime.queries.system(
            window(runtime, days, from_, to, bucket), top=top or runtime.settings.top_agents_default
        )

    @app.post("/v1/sql", tags=["admin"])
    async def run_sql(request: Request, body: SqlRequest) -> dict[str, Any]:
        """One read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) against the
        metrics database, with `readonly = 1`, a time limit and a row limit. The embedded
        ClickHouse can only be opened by this process, so analysts query it here."""
        return await runtime_of(request).sql.run(body.query)

    return app
