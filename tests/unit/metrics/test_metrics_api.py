"""The HTTP query API: shapes, validation in one error envelope, the SQL endpoint, caching."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from metrics.api import create_app
from metrics.queries import COUNTER_FIELDS
from metrics.settings import MetricsSettings
from metrics.testing import drop_database, fresh_database
from metrics.writer import MetricsWriter

from shared.events import decode

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "events" / "examples"
JAN = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}


@pytest_asyncio.fixture(scope="module")
async def api_db(ch_client):
    name = fresh_database(ch_client)
    await MetricsWriter(ch_client, name).write([decode(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))])
    yield name
    drop_database(ch_client, name)


@pytest_asyncio.fixture(scope="module")
async def app(ch_client, api_db):
    app = create_app(MetricsSettings(query_cache_ttl_s=60, hourly_retention_days=0), client=ch_client,
                     database=api_db, run_consumer=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def api(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://metrics") as client:
        yield client


class TestHealth:
    async def test_is_ok_once_migrations_ran(self, api):
        response = await api.get("/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})

    async def test_is_unavailable_before_startup(self):
        app = create_app(MetricsSettings(), run_consumer=False)  # lifespan not entered
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
            response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"


class TestAgentEndpoint:
    async def test_answers_with_totals_errors_models_and_series(self, api):
        body = (await api.get("/v1/metrics/agents/assistant", params=JAN)).json()
        assert set(body) == {"agent_id", "user_id", "days", "from", "to", "bucket", "totals",
                             "errors_by_type", "by_model", "series"}
        assert tuple(body["totals"]) == COUNTER_FIELDS
        assert body["totals"]["sessions"] == 1 and body["totals"]["messages"] == 2
        assert body["totals"]["runs"] == 1 and body["totals"]["cost"] == 0.0
        assert [m["model"] for m in body["by_model"]] == ["scripted:assistant"]
        assert [s["bucket_start"] for s in body["series"]] == ["2026-01-01T00:00:00Z"]

    async def test_restricting_to_another_user_gives_zeros(self, api):
        body = (await api.get("/v1/metrics/agents/assistant", params={**JAN, "user_id": "2"})).json()
        assert body["user_id"] == "2" and body["totals"]["messages"] == 0

    async def test_days_window_is_relative_to_now(self, api):
        body = (await api.get("/v1/metrics/agents/assistant", params={"days": 7})).json()
        assert body["days"] == 7 and len(body["series"]) in (7, 8)  # 7 at exactly midnight


class TestValidation:
    @pytest.mark.parametrize("path, params, field", [
        ("/v1/metrics/agents/a", {"days": 0}, "days"),
        ("/v1/metrics/agents/a", {"days": "many"}, "days"),
        ("/v1/metrics/agents/a", {"bucket": "week"}, "bucket"),
        ("/v1/metrics/users/u", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ("/v1/metrics/users/u", {"from": "yesterday"}, "from"),
        ("/v1/metrics/system", {"days": 365, "bucket": "hour"}, "bucket"),
        ("/v1/metrics/system", {"top": 0}, "top"),
        ("/v1/metrics/system", {"to": "0001-01-01T00:00:00Z"}, "to"),
        ("/v1/metrics/agents/a", {"from": "9999-12-31T23:59:59Z", "days": 3650}, "from"),
        ("/v1/metrics/agents/a", {"user_id": "bad\nid"}, "user_id"),
    ])
    async def test_bad_parameters_get_422_in_the_error_envelope(self, api, path, params, field):
        response = await api.get(path, params=params)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["message"]
        assert field in [d["field"] for d in error["details"]]

    @pytest.mark.parametrize("weird", ["o'brien", 'quote"s', "back\\slash", "%", "ünï😀", "a b", "{x:String}"])
    async def test_odd_ids_are_plain_values_not_sql(self, api, weird):
        for path in (f"/v1/metrics/agents/{weird}", f"/v1/metrics/users/{weird}"):
            response = await api.get(path, params={**JAN, "bucket": "hour"})
            assert response.status_code == 200, response.text
            assert response.json()["totals"]["runs"] == 0
        response = await api.get("/v1/metrics/agents/assistant", params={**JAN, "user_id": weird})
        assert response.status_code == 200 and response.json()["totals"]["messages"] == 0

    async def test_unknown_paths_get_404_in_the_error_envelope(self, api):
        response = await api.get("/v1/metrics/nothing")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestSqlEndpoint:
    async def test_runs_a_read_query(self, api):
        query = "SELECT event_id, content FROM messages_raw ORDER BY event_id"
        response = await api.post("/v1/sql", json={"query": query})
        assert response.status_code == 200
        body = response.json()
        assert [c["name"] for c in body["columns"]] == ["event_id", "content"]
        # message text is not stored unless METRICS_STORE_MESSAGE_CONTENT=true
        assert body["rows"] == [["e3", ""], ["e7", ""]]

    @pytest.mark.parametrize("payload", [
        {"query": "DROP TABLE usage_raw"},
        {"query": "SELECT nonsense("},
        {"query": "SELECT * FROM system.numbers"},
    ])
    async def test_refused_or_failing_queries_get_400(self, api, payload):
        response = await api.post("/v1/sql", json=payload)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_sql"

    async def test_a_body_without_query_gets_422(self, api):
        response = await api.post("/v1/sql", json={"sql": "SELECT 1"})
        assert response.status_code == 422


class TestCache:
    async def test_the_same_question_is_answered_from_the_cache_within_the_ttl(self, api, app, ch_client, api_db):
        first = (await api.get("/v1/metrics/system", params=JAN)).json()
        ch_client.command(f"TRUNCATE TABLE {api_db}.metrics_system_daily SYNC")  # what the system view reads
        assert (await api.get("/v1/metrics/system", params=JAN)).json() == first
        app.state.runtime.queries.cache.clear()
        assert (await api.get("/v1/metrics/system", params=JAN)).json()["totals"]["runs"] == 0


class TestClickHouseOutage:
    async def test_a_failing_clickhouse_answers_503_not_500(self, app, api, monkeypatch):
        from clickhouse_connect.driver.exceptions import OperationalError

        def down(*args, **kwargs):
            raise OperationalError("connection refused")

        queries = app.state.runtime.queries
        monkeypatch.setattr(queries, "_rows", down)
        queries.cache.clear()
        response = await api.get("/v1/metrics/agents/someone-else", params=JAN)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert response.headers["retry-after"] == "5"
