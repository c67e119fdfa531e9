"""One message end to end: HTTP -> gateway -> Kafka -> agent-runner (agno) -> Kafka ->
gateway (answer) and -> metrics -> ClickHouse -> metrics API."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

API = "/api/v1/agentos"


def new_session(client, agent_id="assistant", **extra):
    r = client.post(f"{API}/create-session/", json={"agent_id": agent_id, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    return body["session_id"]


def send(client, session_id, message, agent_id="assistant", **kw):
    return client.post(f"{API}/send-message/", json={"agent_id": agent_id, "session_id": session_id,
                                                     "message": message, "context": {}}, **kw)


def assert_error(response, status, error_type):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["response"] is None
    assert body["error_type"] == error_type
    assert isinstance(body["error"], str) and body["error"]


class TestCoreFlow:
    def test_lists_the_demo_agents_in_the_seed_shape(self, client):
        r = client.get(f"{API}/agents/")
        assert r.status_code == 200
        agents = {a["id"]: a for a in r.json()["agents"]}
        assert set(agents["assistant"]) == {"id", "name", "description", "model", "tools", "capabilities"}
        assert "calculator" in agents["assistant"]["tools"]

    def test_creating_a_session_defaults_its_title(self, client):
        session_id = new_session(client)
        r = client.get(f"{API}/sessions/")
        sessions = {s["id"]: s for s in r.json()["sessions"]}
        assert sessions[session_id]["title"] == "New Chat"
        assert sessions[session_id]["agent_name"] == "Assistant"

    def test_an_arithmetic_question_is_answered_by_the_agent_with_its_calculator(self, client):
        session_id = new_session(client)
        r = send(client, session_id, "What is 6 * 7?")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        assert "42" in body["response"]
        assert body["session_id"] == session_id and body["agent_id"] == "assistant"
        assert body["timestamp"].endswith("Z")

    def test_history_and_order_are_visible_in_the_replies(self, client):
        session_id = new_session(client)
        replies = [send(client, session_id, f"message {i}").json()["response"] for i in range(1, 4)]
        assert replies == [f'Turn {i}: you said "message {i}".' for i in range(1, 4)]

    def test_the_run_shows_up_in_the_agents_metrics_from_clickhouse(self, client):
        before = client.get(f"{API}/metrics/agents/analyst/?days=30").json()["totals"]
        session_id = new_session(client, "analyst")
        assert send(client, session_id, "What is 2 + 2?", agent_id="analyst").json()["success"] is True

        def counted():
            r = client.get(f"{API}/metrics/agents/analyst/?days=30")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["agent_id"] == "analyst" and body["days"] == 30
            totals = body["totals"]
            assert totals["runs"] == before["runs"] + 1
            assert totals["sessions"] == before["sessions"] + 1
            assert totals["messages"] == before["messages"] + 2  # the question and the answer
            assert totals["input_tokens"] > before["input_tokens"]
            assert totals["output_tokens"] > before["output_tokens"]
            assert totals["total_tokens"] == totals["input_tokens"] + totals["output_tokens"]
            assert totals["cost"] > before["cost"]  # the analyst's model is priced
            assert totals["avg_latency_ms"] > 0
            return totals

        eventually(counted, timeout=15)

    def test_a_failing_agent_answers_success_false_and_counts_as_an_error(self, client):
        before = client.get(f"{API}/metrics/agents/gpt-assistant/?days=30").json()["totals"]
        session_id = new_session(client, "gpt-assistant")
        r = send(client, session_id, "hello", agent_id="gpt-assistant")
        assert r.status_code == 200
        body = r.json()
        assert body["success"] is False
        assert "OPENAI_API_KEY" in body["error"]
        assert body["error_type"] == "provider_not_configured"

        def counted():
            totals = client.get(f"{API}/metrics/agents/gpt-assistant/?days=30").json()["totals"]
            assert totals["errors"] == before["errors"] + 1
            assert totals["runs"] == before["runs"] + 1

        eventually(counted)


class TestBadInput:
    def test_no_key_is_401(self, stack):
        assert_error(httpx.get(f"{stack.gateway_url}{API}/agents/"), 401, "authentication")

    def test_a_wrong_key_is_401(self, stack):
        r = httpx.get(f"{stack.gateway_url}{API}/agents/", headers={"Authorization": "Bearer aos_nope"})
        assert_error(r, 401, "authentication")

    def test_unknown_agent_is_404(self, client):
        assert_error(client.post(f"{API}/create-session/", json={"agent_id": "nope"}), 404, "not_found")

    def test_unknown_session_is_404(self, client):
        assert_error(send(client, "sess_missing", "hi"), 404, "not_found")

    def test_invalid_json_is_400(self, client):
        r = client.post(f"{API}/send-message/", content=b"{not json", headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_json")

    def test_missing_fields_are_400(self, client):
        assert_error(client.post(f"{API}/send-message/", json={"agent_id": "assistant"}), 400, "missing_fields")

    def test_wrong_types_are_422(self, client):
        r = client.post(f"{API}/send-message/", json={"agent_id": "assistant", "session_id": "s", "message": ["x"]})
        assert_error(r, 422, "validation")
