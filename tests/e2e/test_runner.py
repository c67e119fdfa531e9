"""agent-runner as a production worker, through the real stack: hundreds of runs at once, in
order per session, surviving kill -9, dead-lettering poison, bounded runs, cancellation."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.devstack import DevStack, free_port
from shared.topics import Topic
from tests.e2e.test_walking_skeleton import API

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("runner-stack")
    s = DevStack(data_dir=data, gateway_port=free_port(), metrics_port=free_port(), log_dir=data / "logs", extra_env={
        "GATEWAY_MAX_CONCURRENT_RUNS": "5000", "GATEWAY_RATE_LIMIT_PER_MINUTE": "100000",
        # 25 s: generous for 300 concurrent runs on a loaded 2-core box; the deadline test sleeps 30 s.
        "RUNNER_RUN_DEADLINE_S": "25", "RUNNER_MAX_TOOL_CALLS": "3", "RUNNER_RETRY_BACKOFF_S": "0.05",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
    })
    try:
        s.start(timeout=120)
        yield s
    finally:
        s.stop()


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60,
                                 limits=httpx.Limits(max_connections=64),
                                 headers={"Authorization": f"Bearer {stack.demo_api_key}"}) as c:
        yield c


async def new_session(api, agent_id="assistant"):
    r = await api.post(f"{API}/create-session/", json={"agent_id": agent_id})
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


async def submit(api, session_id, message, agent_id="assistant"):
    r = await api.post(f"{API}/send-message/", params={"mode": "async"},
                       json={"agent_id": agent_id, "session_id": session_id, "message": message})
    assert r.status_code == 202, r.text
    return r.json()["run_id"]


async def wait_all(api, run_ids, timeout=120.0):
    deadline = time.monotonic() + timeout
    pending, finished = set(run_ids), {}
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} runs unfinished"
        sem = asyncio.Semaphore(32)

        async def poll(run_id):
            async with sem:
                return (await api.get(f"{API}/runs/{run_id}/")).json()

        for run in await asyncio.gather(*(poll(r) for r in pending)):
            if run["status"] in ("completed", "failed", "cancelled"):
                finished[run["run_id"]] = run
        pending -= set(finished)
        if pending:
            await asyncio.sleep(0.5)
    return finished


async def gather_limited(coros, limit=32):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


class TestOrderAndConcurrency:
    async def test_fifty_sessions_of_ten_messages_each_reply_in_order(self, api):
        sessions = await gather_limited([new_session(api) for _ in range(50)])

        async def converse(session_id):
            return [await submit(api, session_id, f"msg {i}") for i in range(1, 11)]

        run_ids = await asyncio.gather(*(converse(s) for s in sessions))
        finished = await wait_all(api, [r for runs in run_ids for r in runs])
        failed = [run for run in finished.values() if run["status"] != "completed"]
        assert not failed, [(r["status"], r["error_type"], r["error"]) for r in failed[:3]]
        for runs in run_ids:
            replies = [finished[r]["response"] for r in runs]
            assert replies == [f'Turn {i}: you said "msg {i}".' for i in range(1, 11)]

    async def test_three_hundred_one_second_runs_finish_in_seconds_not_minutes(self, api):
        sessions = await gather_limited([new_session(api) for _ in range(300)])
        t0 = time.monotonic()
        run_ids = await gather_limited([submit(api, s, "[[sleep:1000]] hello") for s in sessions])
        finished = await wait_all(api, run_ids)
        elapsed = time.monotonic() - t0
        assert all(run["status"] == "completed" for run in finished.values())
        # 300 one-second runs one at a time would take 300 s; concurrently a few seconds.
        assert elapsed < 60, f"took {elapsed:.1f}s"


class TestCrashSafety:
    async def test_kill_9_with_200_runs_in_flight_loses_nothing_and_counts_each_run_once(self, stack, api):
        before = (await api.get(f"{API}/metrics/agents/analyst/?days=30")).json()["totals"]
        sessions = await gather_limited([new_session(api, "analyst") for _ in range(200)])
        run_ids = await gather_limited([submit(api, s, "[[sleep:4000]] survive", agent_id="analyst") for s in sessions])

        async def in_flight():
            # The last runs submitted are the ones still running when the kill comes.
            statuses = await gather_limited([api.get(f"{API}/runs/{r}/") for r in run_ids[-50:]])
            return [s.json()["status"] for s in statuses].count("running")

        deadline = time.monotonic() + 30
        while (running := await in_flight()) < 5:
            assert time.monotonic() < deadline, f"only {running} runs running"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(stack.restart, "agent-runner", kill=True)

        finished = await wait_all(api, run_ids, timeout=180)
        assert all(run["status"] == "completed" for run in finished.values())
        for session_id in sessions[:50]:
            messages = (await api.get(f"{API}/sessions/{session_id}/")).json()["messages"]
            assert [m["role"] for m in messages] == ["user", "assistant"], "a run answered twice"

        async def counted_once():
            totals = (await api.get(f"{API}/metrics/agents/analyst/?days=30")).json()["totals"]
            return totals["runs"] - before["runs"], totals["sessions"] - before["sessions"]

        deadline = time.monotonic() + 30
        while (got := await counted_once()) != (200, 200):
            assert got[0] <= 200, f"double counted: {got}"
            assert time.monotonic() < deadline, f"metrics show {got}"
            await asyncio.sleep(0.5)


class TestFailurePaths:
    async def test_a_poison_command_is_dead_lettered_and_its_partition_keeps_flowing(self, stack, api):
        session_id = await new_session(api)
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap.split(","))
        dlq = AIOKafkaConsumer(str(Topic.DEAD_LETTER), bootstrap_servers=stack.kafka_bootstrap.split(","),
                               auto_offset_reset="earliest", fetch_max_wait_ms=10)
        await producer.start()
        await dlq.start()
        marker = uuid.uuid4().hex.encode()
        try:
            await producer.send_and_wait(str(Topic.RUN_COMMANDS), value=b"not an event " + marker, key=session_id.encode())
            run_id = await submit(api, session_id, "after the poison")  # same key -> same partition
            run = (await wait_all(api, [run_id]))[run_id]
            assert run["status"] == "completed"
            found = None
            deadline = time.monotonic() + 10
            while found is None and time.monotonic() < deadline:
                for records in (await dlq.getmany(timeout_ms=500)).values():
                    found = next((r for r in records if marker in (r.value or b"")), found)
            assert found is not None, "poison message not dead-lettered"
            headers = dict(found.headers)
            assert headers["dlq_original_topic"] == str(Topic.RUN_COMMANDS).encode()
            assert headers["dlq_consumer_group"] == b"agentos.agent-runner"
            assert b"undecodable" in headers["dlq_error"]
        finally:
            await dlq.stop()
            await producer.stop()

    async def test_transient_provider_errors_are_retried_then_fail_with_a_clear_error(self, api):
        session_id = await new_session(api)
        run = (await wait_all(api, [await submit(api, session_id, "[[transient]] flaky")]))
        run = next(iter(run.values()))
        assert run["status"] == "failed" and run["error_type"] == "agent_error"
        assert "transient" in run["error"]

    async def test_a_run_past_its_deadline_fails(self, api):
        session_id = await new_session(api)
        run = next(iter((await wait_all(api, [await submit(api, session_id, "[[sleep:30000]] too slow")])).values()))
        assert run["status"] == "failed" and run["error_type"] == "deadline_exceeded"

    async def test_a_model_that_calls_tools_forever_is_stopped_by_the_turn_cap(self, api):
        session_id = await new_session(api)
        run = next(iter((await wait_all(api, [await submit(api, session_id, "[[loop]] spin")])).values()))
        assert run["status"] == "failed" and run["error_type"] == "turn_cap_exceeded"

    async def test_the_session_keeps_working_after_failures(self, api):
        session_id = await new_session(api)
        await wait_all(api, [await submit(api, session_id, "[[fail]] boom")])
        run = next(iter((await wait_all(api, [await submit(api, session_id, "What is 5 * 5?")])).values()))
        assert run["status"] == "completed" and "25" in run["response"]


class TestTwoRunners:
    async def test_two_runners_share_the_work_and_the_survivor_finishes_everything(self, stack, api):
        second = await asyncio.to_thread(stack.add_service, "agent-runner-2", "agent_runner")
        try:
            def assignments() -> list[str]:
                return [line for line in second.log_path.read_text().splitlines() if "ordered_consumer: assigned" in line]

            deadline = time.monotonic() + 30  # the group rebalances onto two members
            while not assignments():
                assert second.alive() and time.monotonic() < deadline, "second runner never joined"
                await asyncio.sleep(0.2)
            first_assignment = assignments()[0]
            assert 0 < first_assignment.count("agentos.run-commands.v1") < 8, "partitions were not shared"
            sessions = await gather_limited([new_session(api) for _ in range(100)])
            run_ids = await gather_limited([submit(api, s, "[[sleep:2000]] shared") for s in sessions])

            async def running():
                statuses = [(await api.get(f"{API}/runs/{r}/")).json()["status"] for r in run_ids[:30]]
                return statuses.count("running")

            deadline = time.monotonic() + 20
            while await running() < 5:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            stack.services["agent-runner"].kill()  # kill -9 one of the two
            finished = await wait_all(api, run_ids, timeout=180)
            assert all(run["status"] == "completed" for run in finished.values())
            assert second.alive()
            final_assignment = assignments()[-1]
            assert final_assignment.count("agentos.run-commands.v1") == 8, "the survivor did not take over"
        finally:
            await asyncio.to_thread(stack.restart, "agent-runner")
            second.stop()
            stack.services.pop("agent-runner-2", None)
