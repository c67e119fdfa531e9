"""The public API beyond the core flow: access rules, answer modes, idempotency, cancel,
sessions, webhooks, limits — against the real stack (Kafka, runner, metrics)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from gateway.webhooks import signed_headers, verify

from tests.e2e.conftest import eventually
from tests.e2e.test_walking_skeleton import API, assert_error, new_session, send

pytestmark = pytest.mark.e2e
ADMIN = "/api/v1/admin"


def _client(stack, key):
    return httpx.Client(base_url=stack.gateway_url, timeout=60, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def world(stack, admin):
    """alice: member of team T; bob: nobody; carol: subscribed to the subscription agent, and
    dave: had a subscription that was cancelled."""
    tag = uuid.uuid4().hex[:6]

    def user(name):
        u = admin.post(f"{ADMIN}/users/", json={"email": f"{name}-{tag}@example.com", "name": name})
        assert u.status_code == 201, u.text
        key = admin.post(f"{ADMIN}/users/{u.json()['id']}/api-keys/", json={"name": "test"}).json()["api_key"]
        return {"id": u.json()["id"], "key": key, "client": _client(stack, key)}

    users = {n: user(n) for n in ("alice", "bob", "carol", "dave")}
    team = admin.post(f"{ADMIN}/teams/", json={"name": f"team-{tag}"}).json()
    assert admin.post(f"{ADMIN}/teams/{team['id']}/members/", json={"user_id": users["alice"]["id"]}).status_code == 201
    team_agent = f"team-agent-{tag}"
    sub_agent = f"sub-agent-{tag}"
    r = admin.post(f"{ADMIN}/agents/", json={"id": team_agent, "name": "Team agent", "model": "scripted:assistant",
                                             "tools": ["calculator"], "visibility": "team", "team_id": team["id"]})
    assert r.status_code == 201, r.text
    r = admin.post(f"{ADMIN}/agents/", json={"id": sub_agent, "name": "Sub agent", "model": "scripted:assistant",
                                             "tools": ["calculator"], "visibility": "subscription"})
    assert r.status_code == 201, r.text
    admin.post(f"{ADMIN}/subscriptions/", json={"user_id": users["carol"]["id"], "agent_id": sub_agent})
    sub = admin.post(f"{ADMIN}/subscriptions/", json={"user_id": users["dave"]["id"], "agent_id": sub_agent}).json()
    assert admin.post(f"{ADMIN}/subscriptions/{sub['id']}/cancel/").json()["status"] == "cancelled"
    yield {"users": users, "team_agent": team_agent, "sub_agent": sub_agent, "team": team}
    for u in users.values():
        u["client"].close()


# -- the access rule ----------------------------------------------------------------------------
MATRIX = [
    # user,   agent,        may use
    ("alice", "team", True), ("alice", "sub", False), ("alice", "global", True),
    ("bob", "team", False), ("bob", "sub", False), ("bob", "global", True),
    ("carol", "team", False), ("carol", "sub", True), ("carol", "global", True),
    ("dave", "team", False), ("dave", "sub", False), ("dave", "global", True),
]


class TestAuthorizationMatrix:
    @pytest.mark.parametrize("who,which,allowed", MATRIX)
    def test_every_agent_route_applies_the_access_rule(self, world, who, which, allowed):
        agent_id = {"team": world["team_agent"], "sub": world["sub_agent"], "global": "assistant"}[which]
        c = world["users"][who]["client"]
        listed = {a["id"] for a in c.get(f"{API}/agents/").json()["agents"]}
        assert (agent_id in listed) is allowed
        info = c.get(f"{API}/info/").json()
        assert (agent_id in {a["id"] for a in info["available_agents"]}) is allowed
        assert info["agents_count"] == len(listed)
        assert (c.get(f"{API}/agents/{agent_id}/").status_code == 200) is allowed
        r = c.post(f"{API}/create-session/", json={"agent_id": agent_id})
        if not allowed:
            assert_error(r, 404, "not_found")
            assert_error(c.get(f"{API}/metrics/agents/{agent_id}/"), 404, "not_found")
            return
        assert r.status_code == 200
        session_id = r.json()["session_id"]
        reply = send(c, session_id, "What is 3 * 5?", agent_id=agent_id).json()
        assert reply["success"] is True and "15" in reply["response"]

    def test_a_session_of_another_user_is_404_on_every_route(self, world):
        alice, bob = world["users"]["alice"]["client"], world["users"]["bob"]["client"]
        session_id = new_session(alice)
        run_id = send(alice, session_id, "mine").json()["run_id"]
        for method, path, body in [
            ("GET", f"{API}/sessions/{session_id}/", None),
            ("PATCH", f"{API}/sessions/{session_id}/", {"title": "stolen"}),
            ("DELETE", f"{API}/sessions/{session_id}/", None),
            ("POST", f"{API}/send-message/", {"agent_id": "assistant", "session_id": session_id, "message": "hi"}),
            ("GET", f"{API}/runs/{run_id}/", None),
            ("POST", f"{API}/runs/{run_id}/cancel/", None),
            ("GET", f"{API}/runs/{run_id}/stream/", None),
        ]:
            assert_error(bob.request(method, path, json=body), 404, "not_found")
        assert session_id not in {s["id"] for s in bob.get(f"{API}/sessions/").json()["sessions"]}
        # ...and alice still has it, untouched.
        detail = alice.get(f"{API}/sessions/{session_id}/").json()
        assert detail["title"] == "New Chat" and len(detail["messages"]) == 2

    def test_other_users_metrics_are_hidden_and_system_metrics_are_for_admins(self, world, admin):
        bob = world["users"]["bob"]
        alice_id = world["users"]["alice"]["id"]
        assert_error(bob["client"].get(f"{API}/metrics/users/{alice_id}/"), 404, "not_found")
        assert bob["client"].get(f"{API}/metrics/users/me/").status_code == 200
        assert_error(bob["client"].get(f"{API}/metrics/system/"), 403, "permission_denied")
        assert admin.get(f"{API}/metrics/users/{alice_id}/").status_code == 200
        assert admin.get(f"{API}/metrics/system/").status_code == 200

    def test_admin_routes_need_an_admin_key_and_denials_are_audited(self, world, admin):
        bob = world["users"]["bob"]["client"]
        assert_error(bob.get(f"{ADMIN}/users/"), 403, "permission_denied")
        log = admin.get(f"{ADMIN}/audit-log/?limit=200").json()
        actions = {(e["action"], e["actor_user_id"]) for e in log}
        assert ("access.denied", world["users"]["bob"]["id"]) in actions
        assert any(e["action"] == "admin.subscription.cancelled" for e in log)

    def test_membership_changes_take_effect_at_once(self, world, admin):
        bob = world["users"]["bob"]
        agent = world["team_agent"]
        assert bob["client"].get(f"{API}/agents/{agent}/").status_code == 404
        team_id = world["team"]["id"]
        admin.post(f"{ADMIN}/teams/{team_id}/members/", json={"user_id": bob["id"]})
        assert bob["client"].get(f"{API}/agents/{agent}/").status_code == 200
        admin.delete(f"{ADMIN}/teams/{team_id}/members/{bob['id']}/")
        assert bob["client"].get(f"{API}/agents/{agent}/").status_code == 404

    def test_a_revoked_key_stops_working(self, stack, admin):
        u = admin.post(f"{ADMIN}/users/", json={"email": f"rev-{uuid.uuid4().hex[:6]}@example.com"}).json()
        key = admin.post(f"{ADMIN}/users/{u['id']}/api-keys/", json={}).json()
        with _client(stack, key["api_key"]) as c:
            assert c.get(f"{API}/agents/").status_code == 200
            admin.delete(f"{ADMIN}/api-keys/{key['id']}/")
            assert_error(c.get(f"{API}/agents/"), 401, "authentication")

    def test_an_agent_update_bumps_its_version_and_runs_record_it(self, world, admin):
        alice = world["users"]["alice"]["client"]
        agent = world["team_agent"]
        r = admin.patch(f"{ADMIN}/agents/{agent}/", json={"description": "new text"})
        assert r.status_code == 200 and r.json()["version"] == 2
        session_id = new_session(alice, agent)
        run_id = send(alice, session_id, "hello", agent_id=agent).json()["run_id"]
        assert alice.get(f"{API}/runs/{run_id}/").json()["agent_version"] == 2

    def test_unknown_tools_are_rejected_when_the_agent_is_defined(self, admin):
        r = admin.post(f"{ADMIN}/agents/", json={"id": "bad-tools", "name": "x", "model": "scripted:a", "tools": ["rm_rf"]})
        assert_error(r, 422, "validation")
        assert "rm_rf" in r.json()["error"]


# -- answer modes -------------------------------------------------------------------------------
def read_sse(response, stop_after_deltas=None):
    events, current = [], {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if current:
                events.append(current)
                if stop_after_deltas is not None and sum(e["event"] == "delta" for e in events) >= stop_after_deltas:
                    return events
                if current.get("event") == "done":
                    return events
            current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = json.loads(value) if field == "data" else value
    return events


class TestAnswerModes:
    def test_async_mode_answers_202_and_the_run_can_be_polled_to_completion(self, client):
        session_id = new_session(client)
        r = send(client, session_id, "What is 9 * 9?", params={"mode": "async"})
        assert r.status_code == 202
        accepted = r.json()
        assert accepted["status"] == "queued"

        def done():
            run = client.get(accepted["poll_url"]).json()
            assert run["status"] == "completed"
            return run

        run = eventually(done)
        assert "81" in run["response"] and run["usage"]["total_tokens"] > 0

    def test_stream_mode_sends_deltas_then_the_final_result(self, client):
        session_id = new_session(client)
        with client.stream("POST", f"{API}/send-message/", params={"mode": "stream"},
                           json={"agent_id": "assistant", "session_id": session_id,
                                 "message": "[[sleep:400]] please stream this rather long reply in pieces"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = read_sse(r)
        deltas = [e for e in events if e["event"] == "delta"]
        done = events[-1]
        assert done["event"] == "done" and done["data"]["success"] is True
        assert len(deltas) > 1
        assert [int(e["id"]) for e in deltas] == list(range(len(deltas)))
        assert "".join(e["data"]["content"] for e in deltas) == done["data"]["response"]
        assert done["data"]["usage"]["output_tokens"] > 0

    def test_a_reconnecting_stream_resumes_after_last_event_id_without_loss_or_repeats(self, client):
        session_id = new_session(client)
        r = send(client, session_id, "[[sleep:1500]] a reply long enough to be cut into several chunks",
                 params={"mode": "async"})
        run_id = r.json()["run_id"]
        with client.stream("GET", f"{API}/runs/{run_id}/stream/") as first:
            got = read_sse(first, stop_after_deltas=2)
        got = [e for e in got if e["event"] == "delta"]
        last = got[-1]["id"]
        with client.stream("GET", f"{API}/runs/{run_id}/stream/", headers={"Last-Event-ID": last}) as second:
            rest = read_sse(second)
        more = [e for e in rest if e["event"] == "delta"]
        assert [int(e["id"]) for e in got + more] == list(range(len(got) + len(more)))
        text = "".join(e["data"]["content"] for e in got + more)
        assert text == rest[-1]["data"]["response"]

    def test_an_idempotency_key_makes_a_retry_return_the_same_run(self, client):
        session_id = new_session(client)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = send(client, session_id, "only once", headers=key).json()
        second = send(client, session_id, "only once", headers=key).json()
        assert first["run_id"] == second["run_id"] and first["response"] == second["response"]
        messages = client.get(f"{API}/sessions/{session_id}/").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]

    def test_cancel_stops_a_running_run(self, client):
        session_id = new_session(client)
        run_id = send(client, session_id, "[[sleep:20000]] slow", params={"mode": "async"}).json()["run_id"]
        eventually(lambda: _assert_status(client, run_id, "running"))
        t0 = time.monotonic()
        assert client.post(f"{API}/runs/{run_id}/cancel/").status_code == 200
        eventually(lambda: _assert_status(client, run_id, "cancelled"), timeout=5)
        assert time.monotonic() - t0 < 3

    def test_cancel_skips_a_queued_run(self, client):
        session_id = new_session(client)
        blocker = send(client, session_id, "[[sleep:1500]] first", params={"mode": "async"}).json()["run_id"]
        queued = send(client, session_id, "second", params={"mode": "async"}).json()["run_id"]
        client.post(f"{API}/runs/{queued}/cancel/")
        eventually(lambda: _assert_status(client, blocker, "completed"))
        eventually(lambda: _assert_status(client, queued, "cancelled"))


def _assert_status(client, run_id, status):
    assert client.get(f"{API}/runs/{run_id}/").json()["status"] == status


# -- sessions -----------------------------------------------------------------------------------
class TestSessions:
    def test_sessions_are_paginated_newest_first(self, stack, admin):
        u = admin.post(f"{ADMIN}/users/", json={"email": f"pages-{uuid.uuid4().hex[:6]}@example.com"}).json()
        key = admin.post(f"{ADMIN}/users/{u['id']}/api-keys/", json={}).json()["api_key"]
        with _client(stack, key) as c:
            ids = [new_session(c, title=f"chat {i}") for i in range(23)]
            page1 = c.get(f"{API}/sessions/").json()
            page2 = c.get(f"{API}/sessions/?page=2").json()
            assert page1["total_sessions"] == 23 and page1["total_pages"] == 2 and page1["page"] == 1
            assert [s["id"] for s in page1["sessions"] + page2["sessions"]] == ids[::-1]
            assert set(page1["sessions"][0]) == {"id", "title", "agent_name", "agent_id", "created_at", "updated_at"}
            assert_error(c.get(f"{API}/sessions/?page=0"), 422, "validation")

    def test_a_session_shows_its_messages_with_tokens_and_latency_and_can_be_renamed_and_deleted(self, client):
        session_id = new_session(client, title="Before")
        send(client, session_id, "What is 1 + 1?")
        detail = client.get(f"{API}/sessions/{session_id}/").json()
        user_msg, answer = detail["messages"]
        assert user_msg["role"] == "user" and answer["role"] == "assistant" and "2" in answer["content"]
        assert answer["input_tokens"] > 0 and answer["output_tokens"] > 0 and answer["latency_ms"] > 0
        assert client.patch(f"{API}/sessions/{session_id}/", json={"title": "After"}).json()["title"] == "After"
        assert client.delete(f"{API}/sessions/{session_id}/").json()["success"] is True
        assert_error(client.get(f"{API}/sessions/{session_id}/"), 404, "not_found")

    def test_the_main_endpoint_dispatches_actions(self, client):
        assert client.get(f"{API}/?action=info").json()["id"].startswith("agentos_user_")
        assert "agents" in client.get(f"{API}/?action=agents").json()
        sid = client.post(f"{API}/", json={"action": "create_session", "agent_id": "assistant"}).json()["session_id"]
        r = client.post(f"{API}/", json={"action": "send_message", "agent_id": "assistant", "session_id": sid,
                                         "message": "What is 2 * 21?"})
        assert r.json()["success"] is True and "42" in r.json()["response"]
        assert_error(client.get(f"{API}/?action=nope"), 400, "invalid_action")
        assert_error(client.post(f"{API}/", json={"action": "nope"}), 400, "invalid_action")

    def test_fastapi_route_points_at_the_api_documents(self, client):
        body = client.get(f"{API}/fastapi/").json()
        assert body["openapi_url"].endswith("/openapi.json")
        assert client.get("/openapi.json").status_code == 200


# -- limits -------------------------------------------------------------------------------------
class TestLimits:
    def test_an_oversize_body_is_413(self, client):
        r = client.post(f"{API}/send-message/", content=b"x" * (300 * 1024), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "payload_too_large")

    def test_field_limits_are_422(self, client):
        session_id = new_session(client)
        assert_error(client.post(f"{API}/create-session/", json={"agent_id": "assistant", "title": "t" * 201}),
                     422, "validation")
        assert_error(send(client, session_id, "m" * 32_001), 422, "validation")
        r = client.post(f"{API}/send-message/", json={"agent_id": "assistant", "session_id": session_id,
                                                       "message": "hi", "context": {"blob": "x" * 20_000}})
        assert_error(r, 422, "validation")


# -- webhook ------------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.fixture(scope="module")
def source(world, admin):
    sid = f"crm-{uuid.uuid4().hex[:6]}"
    r = admin.post(f"{ADMIN}/webhook-sources/", json={"id": sid, "user_id": world["users"]["alice"]["id"]})
    assert r.status_code == 201, r.text
    return r.json()


class TestWebhook:
    def post(self, stack, source, payload, **header_kw):
        body = json.dumps(payload).encode()
        headers = signed_headers(source["secret"], body, source=source["id"], **header_kw)
        return httpx.post(f"{stack.gateway_url}/agentos/webhook/", content=body, headers=headers), headers, body

    def test_a_signed_message_runs_the_agent_and_the_result_is_delivered_signed_to_the_callback(self, stack, source, receiver):
        _Receiver.received.clear()
        _Receiver.fail_first = 1  # the first delivery attempt fails: it must be retried
        r, _, _ = self.post(stack, source, {"event": "message_received",
                                            "data": {"agent_id": "assistant", "message": "What is 6 * 7?",
                                                     "callback_url": receiver}})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "success"

        def delivered():
            assert _Receiver.received
            return _Receiver.received[0]

        headers, body = eventually(delivered, timeout=20)
        lowered = {k.lower(): v for k, v in headers.items()}
        assert verify(source["secret"], lowered, body)  # signed with the source's secret
        data = json.loads(body)["data"]
        assert data["success"] is True and "42" in data["response"] and data["run_id"] == r.json()["run_id"]

    def test_a_bad_signature_is_401_and_nothing_runs(self, stack, source, admin):
        body = json.dumps({"event": "message_received", "data": {"agent_id": "assistant", "message": "x"}}).encode()
        headers = signed_headers(source["secret"], body, source=source["id"])
        headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
        r = httpx.post(f"{stack.gateway_url}/agentos/webhook/", content=body, headers=headers)
        assert_error(r, 401, "invalid_signature")

    def test_a_missing_signature_or_unknown_source_is_401(self, stack, source):
        r = httpx.post(f"{stack.gateway_url}/agentos/webhook/", json={"event": "message_received", "data": {}},
                       headers={"webhook-source": source["id"]})
        assert_error(r, 401, "authentication")
        r = httpx.post(f"{stack.gateway_url}/agentos/webhook/", json={}, headers={"webhook-source": "nope"})
        assert_error(r, 401, "authentication")

    def test_a_stale_timestamp_is_401(self, stack, source):
        r, _, _ = self.post(stack, source, {"event": "message_received", "data": {"agent_id": "assistant", "message": "x"}},
                            timestamp=int(time.time()) - 600)
        assert_error(r, 401, "stale_timestamp")

    def test_a_replayed_webhook_id_is_409(self, stack, source):
        payload = {"event": "message_received", "data": {"agent_id": "assistant", "message": "once"}}
        r, headers, body = self.post(stack, source, payload)
        assert r.status_code == 200
        again = httpx.post(f"{stack.gateway_url}/agentos/webhook/", content=body, headers=headers)
        assert_error(again, 409, "replayed")

    def test_an_invalid_payload_is_rejected_in_the_envelope(self, stack, source):
        r, _, _ = self.post(stack, source, {"event": "something_else", "data": {}})
        assert r.status_code in (400, 422) and r.json()["success"] is False


class TestTwoGatewayReplicas:
    def test_a_waiting_request_is_answered_when_the_other_replica_projected_its_run(self, stack):
        # The replicas share the projector's consumer group, so about half of these runs are
        # projected by the first one. The second replica's database poll is set far beyond its
        # wait timeout: only the cross-replica wake (gateway.finish_watch) can answer in time.
        from shared.devstack import free_port

        port = free_port()
        second = stack.add_service("gateway-2", "gateway", {
            "GATEWAY_PORT": str(port), "GATEWAY_WAIT_POLL_INTERVAL_S": "600", "GATEWAY_WAIT_TIMEOUT_S": "20",
        })
        try:
            url = f"http://127.0.0.1:{port}"

            def healthy():
                try:
                    assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError as exc:
                    raise AssertionError(f"second gateway not up yet: {exc}") from exc

            eventually(healthy, timeout=60)
            with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {stack.demo_api_key}"}) as c2:
                sessions = [new_session(c2) for _ in range(16)]  # 16 keys over 8 partitions
                results: list = [None] * len(sessions)

                def one(i: int) -> None:
                    # The sleep keeps each run going after the request started waiting for it.
                    started = time.monotonic()
                    r = send(c2, sessions[i], f"[[sleep:1500]] What is {i} + {i}?")
                    results[i] = (r, time.monotonic() - started)

                threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sessions))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            for i, (r, elapsed) in enumerate(results):
                assert r.status_code == 200, r.text
                assert str(2 * i) in r.json()["response"]
                # Without a wake the request only sees its run when it re-reads the database at
                # its 20 s deadline; a woken one answers soon after the 1.5 s run.
                assert elapsed < 15, f"run {i} answered after {elapsed:.1f} s: not woken"
        finally:
            second.stop()
            del stack.services["gateway-2"]
