"""The whole system as separate processes (``shared.devstack.DevStack``), once with SQLite and
once with Postgres behind the gateway and the runner."""

from __future__ import annotations

import time

import httpx
import pytest

from shared.devstack import DevStack, free_port
from tests import backends


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory, postgres_server):
    data = tmp_path_factory.mktemp(f"stack-{request.param}")
    extra = {"RUNNER_SCRIPTED_LATENCY_MS": "0", "GATEWAY_WAIT_TIMEOUT_S": "30"}
    with backends.fresh_postgres_database(postgres_server) if request.param == "postgres" else _null() as gw_db, \
         backends.fresh_postgres_database(postgres_server) if request.param == "postgres" else _null() as runner_db:
        if gw_db:
            extra["GATEWAY_DATABASE_URL"] = gw_db
            extra["RUNNER_DB_URL"] = runner_db
        s = DevStack(data_dir=data, gateway_port=free_port(), metrics_port=free_port(), extra_env=extra,
                     log_dir=data / "logs")
        s.backend = request.param
        try:
            s.start(timeout=120)
            yield s
        finally:
            s.stop()
            if request.node.session.testsfailed:
                for log in sorted((data / "logs").glob("*.log")):
                    print(f"\n===== {log.name} (last 60 lines) =====")
                    print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.gateway_url, timeout=60,
                      headers={"Authorization": f"Bearer {stack.demo_api_key}"}) as c:
        yield c


@pytest.fixture(scope="module")
def admin(stack):
    with httpx.Client(base_url=stack.gateway_url, timeout=60,
                      headers={"Authorization": f"Bearer {stack.admin_api_key}"}) as c:
        yield c


def eventually(fn, timeout=15.0, interval=0.2):
    """Retry ``fn`` until it stops raising AssertionError (for eventually-consistent reads)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
