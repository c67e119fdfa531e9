"""``python -m metrics``: the whole service in one process.

uvicorn serves the query API on ``METRICS_HTTP_HOST:METRICS_HTTP_PORT``; the app lifespan
connects to ClickHouse, runs migrations and starts the Kafka consumer. SIGINT/SIGTERM: uvicorn
stops accepting requests, then the lifespan stops consuming, flushes, commits and closes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import uvicorn

from metrics.api import create_app
from metrics.settings import MetricsSettings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process would end
    "killed by signal". A stop we completed (flushed, committed, closed) exits with 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            if self._captured_signals:
                logging.getLogger("agentos.metrics").info("stopped by signal %s", self._captured_signals)
            self._captured_signals.clear()


def main() -> int:
    settings = MetricsSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka's DEBUG logs every fetch request: keep it at INFO even when we debug.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        # Leave room for the final flush + commit of the consumer.
        timeout_graceful_shutdown=30,
    )
    server = _Server(config)
    server.run()
    # uvicorn exits the process with 3 when startup fails (e.g. ClickHouse unreachable).
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
