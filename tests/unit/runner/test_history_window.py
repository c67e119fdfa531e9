"""The runner reads only the history window of a session from agno's store (agent_runner.agno_db):
that must not change what the model sees or what is stored."""

import pytest
from agno.db.base import SessionType
from sqlalchemy import text

from shared.events import RunCompleted, RunFailed, UsageRecorded
from tests.bench.runner_bench import _request

# Plain turns, a failed run (agno leaves it out of history), a tool run, and enough turns to
# slide the 3-run window well past its start.
SCRIPT = ["one", "two", "[[fail]] three", "What is 6 * 7?", "four", "five", "six", "[[fail]] seven",
          "eight", "nine", "ten", "eleven"]


async def _forget_result(results, run_id: str) -> None:
    """As if the runner died after agno stored the run but before its result was: redelivery."""
    async with results.engine.begin() as conn:
        await conn.execute(text("DELETE FROM agentos_finished_runs WHERE run_id = :r"), {"r": run_id})


async def _play(ex, results) -> list[tuple]:
    for i, message in enumerate(SCRIPT):
        await ex.execute(_request("conv", i, message))
    last = _request("conv", len(SCRIPT) - 1, SCRIPT[-1])
    await _forget_result(results, last.run_id)
    await ex.execute(last)
    out = []
    for event in ex.published:
        if isinstance(event, RunCompleted):
            out.append(("completed", event.content))
        elif isinstance(event, RunFailed):
            out.append(("failed", event.error_type))
        elif isinstance(event, UsageRecorded):
            # Input tokens count every message in the model's context: a different history shows.
            out.append(("usage", event.input_tokens, event.model_turns))
    return out


class TestHistoryWindow:
    @pytest.mark.parametrize("history_runs", [3, 0])
    async def test_the_model_sees_exactly_what_agnos_full_read_gives_it(self, recorder, history_runs):
        windowed, w_results = await recorder("windowed", history_runs=history_runs)
        plain, p_results = await recorder("plain", windowed=False, history_runs=history_runs)
        got, expected = await _play(windowed, w_results), await _play(plain, p_results)
        assert got == expected
        completed = [c[1] for c in got if c[0] == "completed"]
        if history_runs:
            assert completed[:2] == ['Turn 1: you said "one".', 'Turn 2: you said "two".']
            assert completed[-1] == 'Turn 4: you said "eleven".'  # 3 earlier runs + this one
        else:
            assert completed[-1] == 'Turn 1: you said "eleven".'

    async def test_runs_keep_their_order_in_the_store(self, recorder):
        ex, results = await recorder("order", history_runs=3)
        await _play(ex, results)
        async with results.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT run_id, run_index FROM agno_runs WHERE session_id = 'conv' ORDER BY run_index"))).all()
        # Full read (deserialize=False is never windowed): every run, in the order they ran.
        raw = await ex.db.get_session("conv", SessionType.AGENT, deserialize=False)
        assert [r.run_index for r in rows] == list(range(len(SCRIPT)))
        assert [r.run_id for r in rows] == [f"run-conv-{i}" for i in range(len(SCRIPT))]
        assert [r["run_id"] for r in raw["runs"]] == [r.run_id for r in rows]

    async def test_the_run_path_loads_only_the_window(self, recorder):
        ex, _ = await recorder("bounded", history_runs=3)
        for i in range(8):
            await ex.execute(_request("s", i, f"m{i}"))
        bounded = await ex.db.get_session("s", SessionType.AGENT)
        asked = await ex.db.get_session("s", SessionType.AGENT, runs_limit=5)
        assert [r.run_id for r in bounded.runs] == [f"run-s-{i}" for i in (5, 6, 7)]
        assert len(asked.runs) == 5  # an explicit limit is the caller's
