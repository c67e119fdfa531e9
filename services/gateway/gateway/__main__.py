"""``python -m gateway`` — serve the gateway (configured by env vars)."""

import logging

import uvicorn

from gateway.main import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
    settings = GatewaySettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
