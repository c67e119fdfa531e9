"""``python -m gateway`` serves the gateway; ``python -m gateway admin ...`` is the admin CLI."""

import logging
import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "admin":
        from gateway.cli import main as admin_main

        sys.exit(admin_main(sys.argv[2:]))

    import uvicorn

    from gateway.main import create_app
    from gateway.settings import GatewaySettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
    settings = GatewaySettings()
    # Keep-alive longer than a load balancer's idle timeout (60 s is common): otherwise the
    # server closes a connection the client is about to reuse and a POST fails mid-flight.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=5, timeout_keep_alive=settings.keep_alive_s, access_log=settings.access_log)


if __name__ == "__main__":
    main()
