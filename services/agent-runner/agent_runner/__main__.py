"""``python -m agent_runner`` — run one agent-runner worker (configured by env vars)."""

import asyncio
import logging

from agent_runner.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent-runner %(levelname)s %(name)s: %(message)s")
    asyncio.run(create_app().run())


if __name__ == "__main__":
    main()
