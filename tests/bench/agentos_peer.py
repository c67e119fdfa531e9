"""agno's own AgentOS serving the same agent (same offline model, same database kind) — the
reference peer the benchmarks compare against. ``python -m tests.bench.agentos_peer --port P --db FILE``"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("AGNO_TELEMETRY", "false")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()

    import uvicorn
    from agent_runner.app import make_agno_db, make_engine
    from agent_runner.models.scripted import ScriptedModel
    from agent_runner.tools.catalogue import calculator
    from agno.agent import Agent
    from agno.os import AgentOS

    url = f"sqlite+aiosqlite:///{args.db}"
    agent = Agent(id="assistant", name="Assistant", model=ScriptedModel(latency_ms=args.latency_ms),
                  tools=[calculator], db=make_agno_db(url, make_engine(url)), add_history_to_context=True,
                  num_history_runs=100, telemetry=False)
    app = AgentOS(agents=[agent], telemetry=False).get_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
