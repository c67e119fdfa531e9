"""The body limit holds for chunked bodies too, and every response carries a correlation id."""

import httpx
from fastapi import FastAPI, Request
from gateway.errors import install_error_handlers
from gateway.main import BodyLimitAndCorrelation
from gateway.ratelimit import TokenBucket


def app() -> FastAPI:
    a = FastAPI()
    install_error_handlers(a)
    a.add_middleware(BodyLimitAndCorrelation, max_body_bytes=1000)

    @a.post("/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        return {"size": len(body), "correlation_id": request.state.correlation_id}

    return a


async def post(content, headers=None):
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/echo", content=content, headers=headers or {})


class TestBodyLimitAndCorrelation:
    async def test_a_small_body_passes_and_the_correlation_id_comes_back(self):
        r = await post(b"x" * 10, {"X-Request-ID": "abc-123"})
        assert r.status_code == 200 and r.json() == {"size": 10, "correlation_id": "abc-123"}
        assert r.headers["x-request-id"] == "abc-123"

    async def test_a_declared_oversize_body_is_413_before_it_is_read(self):
        r = await post(b"x" * 2000)
        assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"

    async def test_a_chunked_oversize_body_is_413_too(self):
        async def chunks():
            for _ in range(10):
                yield b"y" * 500

        r = await post(chunks())
        assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"

    async def test_an_invalid_correlation_id_is_replaced(self):
        r = await post(b"{}", {"X-Request-ID": "x" * 500})
        assert len(r.json()["correlation_id"]) == 32


class TestTokenBucket:
    def test_allows_the_burst_then_asks_to_retry_later(self):
        bucket = TokenBucket(per_minute=60, burst=3)
        assert [bucket.take(1) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = bucket.take(1)
        assert 0 < wait <= 1.0
        assert bucket.take(2) == 0.0  # other users are unaffected
