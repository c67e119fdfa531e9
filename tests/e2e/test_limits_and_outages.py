"""Limits and a Kafka outage, against the real stack (an in-process dev broker so the test can
take it down and bring it back)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from shared.devstack import DevStack, free_port
from shared.kafka.devbroker import DevKafkaBroker
from tests.e2e.test_walking_skeleton import API, assert_error

pytestmark = pytest.mark.e2e
ADMIN = "/api/v1/admin"


@pytest.fixture(scope="module")
def broker():
    with DevKafkaBroker() as b:
        yield b


@pytest.fixture(scope="module")
def stack(tmp_path_factory, broker):
    data = tmp_path_factory.mktemp("limits-stack")
    s = DevStack(data_dir=data, gateway_port=free_port(), metrics_port=free_port(), log_dir=data / "logs",
                 kafka_bootstrap=broker.bootstrap_servers,
                 extra_env={"GATEWAY_RATE_LIMIT_PER_MINUTE": "120", "GATEWAY_MAX_CONCURRENT_RUNS": "5",
                            "GATEWAY_PUBLISH_TIMEOUT_S": "2", "KAFKA_REQUEST_TIMEOUT_MS": "2000"})
    try:
        s.start(timeout=120)
        yield s
    finally:
        s.stop()


def fresh_user(stack) -> httpx.Client:
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {stack.admin_api_key}"}) as admin:
        u = admin.post(f"{ADMIN}/users/", json={"email": f"lim-{uuid.uuid4().hex[:6]}@example.com"}).json()
        key = admin.post(f"{ADMIN}/users/{u['id']}/api-keys/", json={}).json()["api_key"]
    return httpx.Client(base_url=stack.gateway_url, timeout=30, headers={"Authorization": f"Bearer {key}"})


class TestLimits:
    def test_too_many_requests_is_429_with_retry_after_and_other_users_are_unaffected(self, stack):
        with fresh_user(stack) as greedy, fresh_user(stack) as other:
            statuses = [greedy.get(f"{API}/agents/").status_code for _ in range(140)]
            assert statuses.count(200) <= 121 and 429 in statuses
            r = greedy.get(f"{API}/agents/")
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            assert other.get(f"{API}/agents/").status_code == 200

    def test_too_many_runs_in_progress_is_429(self, stack):
        with fresh_user(stack) as c:
            sid = c.post(f"{API}/create-session/", json={"agent_id": "assistant"}).json()["session_id"]
            codes = [c.post(f"{API}/send-message/", params={"mode": "async"},
                            json={"agent_id": "assistant", "session_id": sid, "message": "[[sleep:3000]] x"}).status_code
                     for _ in range(7)]
            assert codes[:5] == [202] * 5 and codes[5:] == [429, 429]


class TestKafkaOutage:
    def test_kafka_down_is_503_quickly_with_nothing_half_written_and_recovery_needs_no_restart(self, stack, broker):
        with fresh_user(stack) as c:
            sid = c.post(f"{API}/create-session/", json={"agent_id": "assistant"}).json()["session_id"]
            before = c.get(f"{API}/sessions/").json()["total_sessions"]
            broker.set_broker_down(-1)
            try:
                t0 = time.monotonic()
                r = c.post(f"{API}/send-message/", json={"agent_id": "assistant", "session_id": sid, "message": "hi"})
                elapsed = time.monotonic() - t0
                assert_error(r, 503, "service_unavailable")
                assert "Retry-After" in r.headers
                assert elapsed < 10, f"took {elapsed:.1f}s"
                assert_error(c.post(f"{API}/create-session/", json={"agent_id": "assistant"}), 503, "service_unavailable")
            finally:
                broker.set_broker_up(-1)
            # nothing half-written: no extra session, no message, no run
            assert c.get(f"{API}/sessions/").json()["total_sessions"] == before
            assert c.get(f"{API}/sessions/{sid}/").json()["messages"] == []
            deadline = time.monotonic() + 60
            while True:  # the producer reconnects by itself
                r = c.post(f"{API}/send-message/", json={"agent_id": "assistant", "session_id": sid,
                                                         "message": "back again"})
                if r.status_code == 200:
                    break
                assert r.status_code == 503 and time.monotonic() < deadline
                time.sleep(1)
            assert r.json()["response"] == 'Turn 1: you said "back again".'
