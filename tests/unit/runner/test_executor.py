"""RunExecutor with a real agno agent and a real SQLite database (no Kafka)."""

import asyncio

import pytest

from shared.events import RunCancelled, RunCompleted, RunFailed, RunStarted, UsageRecorded
from tests.bench.runner_bench import SNAP, _executor, _request


@pytest.fixture
async def executor(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ex, results = await _executor(str(tmp_path))
    published = []

    async def publish(event):
        published.append(event)

    ex.publish = publish
    ex.published = published
    yield ex
    await results.close()


class TestRunExecutor:
    async def test_a_run_emits_started_completed_and_usage_in_that_order(self, executor):
        await executor.execute(_request("s1", 0, "What is 6 * 7?"))
        kinds = [type(e) for e in executor.published]
        assert kinds == [RunStarted, RunCompleted, UsageRecorded]
        done, usage = executor.published[1], executor.published[2]
        assert done.content == "6 * 7 = 42"
        assert usage.status == "completed" and usage.tool_calls == 1 and usage.model_turns == 2
        assert usage.input_tokens > 0 and usage.total_tokens == usage.input_tokens + usage.output_tokens
        assert usage.cost_usd == 0.0 and usage.price_version

    async def test_a_redelivered_finished_run_re_emits_the_same_events_without_running_again(self, executor):
        request = _request("s2", 0, "hello")
        await executor.execute(request)
        first = executor.published[-2:]
        executor.published.clear()
        await executor.execute(request)
        assert executor.published == first  # same event ids: downstream deduplicates
        assert not any(isinstance(e, RunStarted) for e in executor.published)

    async def test_a_run_cancelled_before_it_started_is_skipped(self, executor):
        request = _request("s3", 0, "never")
        executor.registry.request_cancel(request.run_id)
        await executor.execute(request)
        kinds = [type(e) for e in executor.published]
        assert kinds == [RunCancelled, UsageRecorded]
        assert executor.published[1].status == "cancelled"

    async def test_a_running_run_is_cancelled_within_a_second(self, executor):
        request = _request("s4", 0, "[[sleep:10000]] slow")
        task = asyncio.create_task(executor.execute(request))
        while request.run_id not in executor.registry.running:
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        executor.registry.request_cancel(request.run_id)
        await asyncio.wait_for(task, 5)
        assert loop.time() - t0 < 1.0
        assert isinstance(executor.published[-2], RunCancelled)

    async def test_a_provider_without_its_key_fails_the_run_with_a_clear_error(self, executor):
        request = _request("s5", 0, "hi").model_copy(update={"agent": SNAP.model_copy(update={"model": "openai:gpt-4o-mini"})})
        await executor.execute(request)
        failed = next(e for e in executor.published if isinstance(e, RunFailed))
        assert failed.error_type == "provider_not_configured" and "OPENAI_API_KEY" in failed.error
        usage = executor.published[-1]
        assert usage.status == "failed" and usage.total_tokens == 0 and usage.cost_usd == 0.0
