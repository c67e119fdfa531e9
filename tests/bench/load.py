"""A load generator meant to run in its own process (so the client does not share the event
loop or the GIL with the server it measures). Reads a JSON spec on stdin, prints a JSON result.

spec = {"base_url", "method", "path", "headers", "json"? | "form"?, "concurrency", "requests",
        "sessions"?: [ids, one per client: "{session}" in path/json/form is replaced]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


def _fill(value, session):
    if isinstance(value, str):
        return value.replace("{session}", session or "")
    if isinstance(value, dict):
        return {k: _fill(v, session) for k, v in value.items()}
    return value


async def run(spec: dict) -> dict:
    concurrency = spec["concurrency"]
    total = spec["requests"]
    sessions = spec.get("sessions") or [None] * concurrency
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=spec["base_url"], headers=spec.get("headers", {}), timeout=120,
                                 limits=limits) as client:
        async def worker(i: int) -> None:
            nonlocal errors
            session = sessions[i % len(sessions)]
            for _ in counter:
                kwargs = {}
                if "json" in spec:
                    kwargs["json"] = _fill(spec["json"], session)
                if "form" in spec:
                    kwargs["data"] = _fill(spec["form"], session)
                t0 = time.perf_counter()
                r = await client.request(spec["method"], _fill(spec["path"], session), **kwargs)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code >= 400:
                    errors += 1

        # warm-up: one request per client, not measured
        t_start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - t_start
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None

    return {"requests": len(latencies), "errors": errors, "wall_s": wall, "rps": len(latencies) / wall if wall else 0,
            "p50_ms": pct(50), "p99_ms": pct(99)}


def main() -> None:
    spec = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
