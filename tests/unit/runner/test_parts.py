"""Runs of one agent definition share its model and tools (agent_runner.parts); each run still
counts its own model turns against the turn cap."""

import asyncio

from shared.events import UsageRecorded
from tests.bench.runner_bench import SNAP, _request


class TestSharedModel:
    async def test_runs_of_one_definition_share_the_model_a_new_version_gets_its_own(self, recorder):
        ex, _ = await recorder("shared")
        first = ex.parts.get(SNAP)
        assert ex.parts.get(SNAP.model_copy()) is first
        assert ex.parts.get(SNAP.model_copy(update={"version": 2})).model is not first.model
        assert ex.parts.get(SNAP.model_copy(update={"options": {"latency_ms": 1}})).model is not first.model

    async def test_concurrent_runs_on_one_model_count_their_own_turns(self, recorder):
        ex, _ = await recorder("turns", scripted_latency_ms=50)
        await asyncio.gather(ex.execute(_request("a", 0, "What is 6 * 7?")), ex.execute(_request("b", 0, "hi")),
                             ex.execute(_request("c", 0, "[[loop]] spin")))
        usage = {e.session_id: e for e in ex.published if isinstance(e, UsageRecorded)}
        assert usage["a"].model_turns == 2 and usage["b"].model_turns == 1
        assert usage["c"].status == "failed" and usage["c"].error_type == "turn_cap_exceeded"
        assert usage["c"].model_turns == ex.settings.max_tool_calls + 3  # the one over the cap raised

