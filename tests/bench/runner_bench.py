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
    """Per-run cost by session length. The sessions are grown first, then measured in rounds
    of one run per length (a fresh session for length 1), so a load spike on a shared machine
    hits every length alike and the ratio compares like with like."""
    marks = (1, 100, 1000) if quick else (1, 100, 1000, 3000)
    rounds = 20 if quick else 40
    timings: dict[int, list[float]] = {mark: [] for mark in marks}
    cpu: dict[int, list[float]] = {mark: [] for mark in marks}  # this process only: less noisy on a busy machine
    with tempfile.TemporaryDirectory() as tmp:
        executor, results = await _executor(tmp, **overrides)
        for mark in marks[1:]:
            for turn in range(mark - 1):
                await executor.execute(_request(f"len{mark}", turn))
        for r in range(rounds):
            for mark in marks[r % len(marks):] + marks[:r % len(marks)]:  # no length always goes first
                session, turn = (f"fresh{r}", 0) if mark == 1 else (f"len{mark}", mark - 1 + r)
                t0, c0 = time.perf_counter(), time.process_time()
                await executor.execute(_request(session, turn))
                timings[mark].append((time.perf_counter() - t0) * 1000)
                cpu[mark].append((time.process_time() - c0) * 1000)
        await results.close()
    base = percentile(timings[1], 50)
    rows = []
    for mark in marks:
        note = f"median of {rounds}, cpu {percentile(cpu[mark], 50):.1f} ms"
        if mark == 1000:
            note += "; target: <= 1.5x"
        rows.append(Row("runner per-run cost", f"session length {mark}", percentile(timings[mark], 50), "ms", base,
                        "session length 1", note=note))
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
