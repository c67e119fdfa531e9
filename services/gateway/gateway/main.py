"""The gateway app: ``create_app()`` wires settings, database, Kafka and routes."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from gateway.access import ACCESS_CACHE
from gateway.db.engine import make_engine, make_sessionmaker, migrate
from gateway.errors import error_response, install_error_handlers
from gateway.finish_watch import RunFinishWatcher
from gateway.projector import RunProjector
from gateway.ratelimit import TokenBucket
from gateway.routes import admin, agentos, metrics, webhook
from gateway.runs import RunService
from gateway.seed import seed_demo
from gateway.settings import GatewaySettings
from gateway.streams import DeltaHub
from gateway.webhooks import CallbackDispatcher
from shared.asyncapi import asyncapi_document
from shared.events import new_id
from shared.kafka.publisher import make_broker

log = logging.getLogger("gateway")

VERSION = "0.1.0"


class _TooLarge(Exception):
    pass


class BodyLimitAndCorrelation:
    """Pure ASGI middleware (BaseHTTPMiddleware costs a task and a stream per request).

    Rejects bodies over ``max_body_bytes`` — by Content-Length before reading, and while
    reading for chunked bodies — and tags each request with a correlation id (``X-Request-ID``
    if the client sent a sane one) that follows it through Kafka and comes back in the response.
    """

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in (scope.get("query_string") or b"").lower():
            await error_response(400, "NUL characters are not allowed in the URL", "bad_request")(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await error_response(400, "Invalid Content-Length", "bad_request")(scope, receive, send)
                return
            if int(length) > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        correlation_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else new_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge
            return message

        async def tagged_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", correlation_id.encode())]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except _TooLarge:
            if not started:
                await self._too_large()(scope, receive, send)

    def _too_large(self):
        return error_response(413, f"Request body larger than {self.max_body_bytes} bytes", "payload_too_large")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        url = settings.async_database_url()
        await migrate(url)
        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
        if settings.seed_demo:
            await seed_demo(sessionmaker, settings.agents_file, settings.demo_api_key, settings.admin_api_key)
        broker = make_broker(settings.kafka, client_id="gateway")
        await broker.start()
        runs = RunService(sessionmaker, broker, publish_timeout_s=settings.publish_timeout_s,
                          poll_interval_s=settings.wait_poll_interval_s)
        projector = RunProjector(settings.kafka, sessionmaker, runs.waiters)
        await projector.start()
        finish_watch = RunFinishWatcher(settings.kafka, runs.waiters)
        await finish_watch.start()
        deltas = DeltaHub(settings.kafka)
        await deltas.start()
        app.state.deltas = deltas
        callbacks = CallbackDispatcher(sessionmaker)
        await callbacks.start()
        app.state.callbacks = callbacks
        app.state.settings = settings
        app.state.rate_limiter = TokenBucket(settings.rate_limit_per_minute)
        ACCESS_CACHE.ttl_s = settings.access_cache_ttl_s
        app.state.access_cache = ACCESS_CACHE
        app.state.sessionmaker = sessionmaker
        app.state.runs = runs
        app.state.metrics_client = httpx.AsyncClient(base_url=settings.metrics_url, timeout=10.0)
        log.info("gateway ready on http://%s:%d (database %s)", settings.host, settings.port, engine.url.render_as_string())
        try:
            yield
        finally:
            await callbacks.stop()
            await deltas.stop()
            await finish_watch.stop()
            await projector.stop()
            await broker.stop()
            await app.state.metrics_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="AgentOS gateway",
        version=VERSION,
        description="Run agno agents for many users over Kafka; every token accounted for in ClickHouse.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitAndCorrelation, max_body_bytes=settings.max_body_bytes)
    app.include_router(agentos.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    app.include_router(webhook.router)

    @app.get("/asyncapi.json", tags=["ops"], summary="AsyncAPI 3.0 document of the Kafka events",
             include_in_schema=False)
    async def asyncapi() -> dict:
        return asyncapi_document(settings.kafka.servers, VERSION)

    @app.get("/healthz", tags=["ops"], summary="Liveness (no authentication)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
