"""In-process runner figures: per-run cost as a session grows, and memory with many runs in
flight (no Kafka in the loop: this isolates the executor + agno + its database)."""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time

import psutil

from shared.events import AgentSnapshot, RunRequested, utcnow
from tests.bench.common import Row, percentile


async def _executor(tmp: str, windowed: bool = True, **overrides):
    os.environ["AGENTOS_DATA_DIR"] = tmp
    from agent_runner.agno_db import make_agno_db, make_engine
    from agent_runner.executor import RunExecutor
    from agent_runner.results import ResultStore
    from agent_runner.settings import RunnerSettings

    settings = RunnerSettings(**overrides)
    url = settings.agno_db_url()
    engine = make_engine(url)
    results = ResultStore(url, engine=engine)
    await results.create()

    async def publish(_event) -> None:
        return None

    # As agent_runner.app wires it; windowed=False is agno's own store (the comparison in tests).
    agno_db = make_agno_db(url, engine, history_window=settings.history_runs if windowed else None)
    return RunExecutor(settings, agno_db, results, publish), results


SNAP = AgentSnapshot(id="assistant", name="Assistant", model="scripted:assistant", tools=["calculator"])


def _request(session: str, i: int, message: str = "hello") -> RunRequested:
    return RunRequested(correlation_id="bench", user_id="1", agent_id="assistant", session_id=session,
                        run_id=f"run-{session}-{i}", agent=SNAP, message_id=f"m{i}", message=message,
                        requested_at=utcnow())


async def session_length_rows(quick: bool, **overrides) -> list[Row]:
    rows = []
    marks = (1, 100, 1000) if not quick else (1, 100, 300)
    with tempfile.TemporaryDirectory() as tmp:
        executor, results = await _executor(tmp, **overrides)
        timings: dict[int, list[float]] = {}
        turn = 0
        for mark in marks:
            while turn < mark - 1:
                await executor.execute(_request("long", turn))
                turn += 1
            samples = []
            for _ in range(10):
                t0 = time.perf_counter()
                await executor.execute(_request("long", turn))
                samples.append((time.perf_counter() - t0) * 1000)
                turn += 1
            timings[mark] = samples
        await results.close()
    base = percentile(timings[1], 50)
    for mark in marks:
        rows.append(Row("runner per-run cost", f"session length {mark}", percentile(timings[mark], 50), "ms", base,
                        "session length 1", note="target at 1000: <= 1.5x" if mark == marks[-1] else ""))
    return rows


async def rss_rows(quick: bool) -> list[Row]:
    count = 1000
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        executor, results = await _executor(tmp, max_in_flight=count, scripted_latency_ms=3000, run_deadline_s=60)
        await executor.execute(_request("warm", 0))
        gc.collect()
        before = proc.memory_info().rss / 2**20
        tasks = [asyncio.create_task(executor.execute(_request(f"s{i}", 0))) for i in range(count)]
        await asyncio.sleep(2.0)
        during = proc.memory_info().rss / 2**20
        in_flight = len(executor.registry.running)
        await asyncio.gather(*tasks)
        await results.close()
    return [Row("runner memory", f"RSS with {in_flight} runs in flight", during, "MiB", before, "RSS idle",
                note=f"{(during - before) * 1024 / max(in_flight, 1):.0f} KiB per run")]


def run(quick: bool) -> list[Row]:
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    return asyncio.run(session_length_rows(quick)) + asyncio.run(rss_rows(quick))


if __name__ == "__main__":
    from tests.bench.common import print_table

    print_table(run(True))
