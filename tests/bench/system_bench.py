"""Benchmarks that drive the whole system over HTTP (gateway figures; end-to-end runs vs
agno's AgentOS). Every load comes from a separate process (tests.bench.load)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared.devstack import DevStack, free_port
from tests.bench.common import Row, cpu_seconds, load

API = "/api/v1/agentos"
FAST_ENV = {
    "GATEWAY_RATE_LIMIT_PER_MINUTE": "100000000", "GATEWAY_MAX_CONCURRENT_RUNS": "100000",
    "GATEWAY_ACCESS_LOG": "false", "RUNNER_MAX_IN_FLIGHT": "1024",
}


def _sessions(stack: DevStack, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {stack.demo_api_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=60) as c:
        return [c.post(f"{API}/create-session/", json={"agent_id": "assistant"}).json()["session_id"] for _ in range(n)]


def _agentos(db: Path, latency_ms: float):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.agentos_peer", "--port", str(port), "--db", str(db),
                             "--latency-ms", str(latency_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("AgentOS peer did not start")
        time.sleep(0.2)


def gateway_rows(quick: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = DevStack(data_dir=Path(tmp), gateway_port=free_port(), metrics_port=free_port(), extra_env=FAST_ENV,
                         log_dir=Path(tmp) / "logs")
        stack.start()
        try:
            auth = {"Authorization": f"Bearer {stack.demo_api_key}"}
            n = 300 if quick else 2000
            for conc in (1, 32):
                base = load({"base_url": stack.gateway_url, "method": "GET", "path": "/healthz",
                             "concurrency": conc, "requests": n})
                for case, spec in (
                    ("list agents", {"method": "GET", "path": f"{API}/agents/"}),
                    ("create session", {"method": "POST", "path": f"{API}/create-session/",
                                        "json": {"agent_id": "assistant", "title": "bench"}}),
                ):
                    got = load({"base_url": stack.gateway_url, "headers": auth, "concurrency": conc, "requests": n, **spec})
                    rows.append(Row("gateway", f"{case} rps @{conc}", got["rps"], "req/s", base["rps"],
                                    "GET /healthz", note=f"{got['errors']} errors"))
                    rows.append(Row("gateway", f"{case} p50 @{conc}", got["p50_ms"], "ms", base["p50_ms"], "GET /healthz"))
                    rows.append(Row("gateway", f"{case} p99 @{conc}", got["p99_ms"], "ms", base["p99_ms"], "GET /healthz"))
        finally:
            stack.stop()
    return rows


def runs_rows(quick: bool) -> list[Row]:
    """This system end to end (HTTP -> Kafka -> runner -> HTTP, wait mode) vs AgentOS."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = DevStack(data_dir=Path(tmp), gateway_port=free_port(), metrics_port=free_port(), extra_env=FAST_ENV,
                         log_dir=Path(tmp) / "logs")
        stack.start()
        peer, peer_url = _agentos(Path(tmp) / "agentos.sqlite", 0.0)
        try:
            auth = {"Authorization": f"Bearer {stack.demo_api_key}"}
            n = 200 if quick else 1000
            for conc in (1, 32):
                sessions = _sessions(stack, conc)
                ours = load({"base_url": stack.gateway_url, "headers": auth, "method": "POST",
                             "path": f"{API}/send-message/", "concurrency": conc, "requests": n, "sessions": sessions,
                             "json": {"agent_id": "assistant", "session_id": "{session}", "message": "hello"}})
                theirs = load({"base_url": peer_url, "method": "POST", "path": "/agents/assistant/runs",
                               "concurrency": conc, "requests": n, "sessions": [f"peer-{conc}-{i}" for i in range(conc)],
                               "form": {"message": "hello", "stream": "false", "session_id": "{session}"}})
                for metric, unit in (("p50_ms", "ms"), ("p99_ms", "ms"), ("rps", "runs/s")):
                    rows.append(Row("runs e2e (0 ms model)", f"{metric.split('_')[0]} @{conc} clients", ours[metric], unit,
                                    theirs[metric], "agno AgentOS", note=f"errors {ours['errors']}/{theirs['errors']}"))
        finally:
            peer.kill()
            stack.stop()

    # 500 concurrent runs with a 1 s model: one runner process vs AgentOS (one process).
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(FAST_ENV, AGENTOS_SCRIPTED_LATENCY_MS="1000")
        stack = DevStack(data_dir=Path(tmp), gateway_port=free_port(), metrics_port=free_port(), extra_env=env,
                         log_dir=Path(tmp) / "logs")
        stack.start()
        peer, peer_url = _agentos(Path(tmp) / "agentos.sqlite", 1000.0)
        try:
            count = 500
            sessions = _sessions(stack, count)
            auth = {"Authorization": f"Bearer {stack.demo_api_key}"}
            # CPU per run of each process explains the wall time: on 2 cores, 500 runs cannot
            # finish faster than (total CPU per run x 500) / 2, whatever the concurrency.
            pids = {name: svc.proc.pid for name, svc in stack.services.items()} | {"broker": stack.broker_proc.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            ours = load({"base_url": stack.gateway_url, "headers": auth, "method": "POST", "path": f"{API}/send-message/",
                         "concurrency": count, "requests": count, "sessions": sessions,
                         "json": {"agent_id": "assistant", "session_id": "{session}", "message": "hello"}})
            time.sleep(2)  # let metrics ingest the last usage events
            ours_cpu = {name: (cpu_seconds(pid) - before[name]) * 1000 / count for name, pid in pids.items()}
            peer_before = cpu_seconds(peer.pid)
            theirs = load({"base_url": peer_url, "method": "POST", "path": "/agents/assistant/runs",
                           "concurrency": count, "requests": count, "sessions": [f"p{i}" for i in range(count)],
                           "form": {"message": "hello", "stream": "false", "session_id": "{session}"}})
            peer_cpu = (cpu_seconds(peer.pid) - peer_before) * 1000 / count
            rows.append(Row("runs e2e (1 s model)", "500 concurrent: wall time", ours["wall_s"], "s", theirs["wall_s"],
                            "agno AgentOS", note=f"target < 3 s; errors {ours['errors']}/{theirs['errors']}"))
            rows.append(Row("runs e2e (1 s model)", "CPU per run, all processes", sum(ours_cpu.values()), "ms",
                            peer_cpu, "agno AgentOS process",
                            note=", ".join(f"{name} {ms:.1f}" for name, ms in ours_cpu.items())))
        finally:
            peer.kill()
            stack.stop()
    return rows


if __name__ == "__main__":
    from tests.bench.common import print_table

    os.environ.setdefault("AGNO_TELEMETRY", "false")
    print_table(gateway_rows(True) + runs_rows(True))
