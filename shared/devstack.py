"""The embedded default, as separate processes: ``python -m shared.devstack`` (``make run``).

Starts the in-memory development Kafka broker, then the metrics service, the agent-runner and
the gateway — each its own ``python -m`` process configured only by environment variables, as
in production — waits until they answer, prints the gateway URL and the demo API key, and on
Ctrl-C / SIGTERM stops them in reverse order. The e2e tests use the same ``DevStack`` class.

Everything the stack writes (SQLite files, embedded ClickHouse) lives under
``AGENTOS_DATA_DIR`` (default ``.data``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.kafka.devbroker import start_devbroker_process

ROOT = Path(__file__).resolve().parents[1]


def _die_with_parent() -> None:
    """Linux: SIGTERM the child when the supervisor dies (no orphaned services after a crash
    or a killed test run)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    health_url: str | None = None
    log_path: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=self.env, cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if out else None,
                                     # Own session: Ctrl-C reaches only the supervisor, which then stops
                                     # services before the broker (otherwise all die at once, noisily).
                                     preexec_fn=_die_with_parent, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the crash tests' way of stopping a service."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DevStack:
    data_dir: Path
    gateway_port: int = 8000
    metrics_port: int = 8001
    demo_api_key: str | None = None
    admin_api_key: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    kafka_bootstrap: str | None = None  # an existing Kafka; otherwise the dev broker is started

    broker_proc: subprocess.Popen | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "AGENTOS_DATA_DIR": str(self.data_dir),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap or "",
            "AGNO_TELEMETRY": "false",
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_METRICS_URL": self.metrics_url,
            "GATEWAY_SEED_DEMO": "true",
            "AGENTOS_DEMO_API_KEY": self.demo_api_key or "",
            "AGENTOS_ADMIN_API_KEY": self.admin_api_key or "",
            "METRICS_HTTP_PORT": str(self.metrics_port),
        })
        env.update(self.extra_env)
        return env

    def _keys(self) -> None:
        # Stable across restarts of `make run`: generated once, kept in the data folder.
        for attr, filename in (("demo_api_key", "demo_api_key"), ("admin_api_key", "admin_api_key")):
            if getattr(self, attr):
                continue
            path = self.data_dir / filename
            if not path.exists():
                path.write_text("aos_" + secrets.token_urlsafe(32))
                path.chmod(0o600)
            setattr(self, attr, path.read_text().strip())

    def start(self, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._keys()
        if not self.kafka_bootstrap:
            self.broker_proc, self.kafka_bootstrap = start_devbroker_process()
            self.extra_env.setdefault("AGENTOS_DEVBROKER_COMPAT", "1")
        env = self.env()
        logs = self.log_dir
        if logs:
            logs.mkdir(parents=True, exist_ok=True)
        self.services = {
            "metrics": ServiceProcess("metrics", "metrics", env, f"{self.metrics_url}/healthz",
                                      logs / "metrics.log" if logs else None),
            "agent-runner": ServiceProcess("agent-runner", "agent_runner", env, None,
                                           logs / "agent-runner.log" if logs else None),
            "gateway": ServiceProcess("gateway", "gateway", env, f"{self.gateway_url}/healthz",
                                      logs / "gateway.log" if logs else None),
        }
        for service in self.services.values():
            service.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for service in self.services.values():
            if not service.alive():
                raise RuntimeError(f"{service.name} exited with code {service.proc.returncode}")
            while service.health_url:
                if not service.alive():
                    raise RuntimeError(f"{service.name} exited with code {service.proc.returncode}")
                try:
                    if httpx.get(service.health_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service.name} not healthy after {timeout}s")
                time.sleep(0.2)

    def add_service(self, name: str, module: str, env_overrides: dict[str, str] | None = None) -> ServiceProcess:
        """Start another replica (e.g. a second agent-runner in the same consumer group)."""
        env = {**self.env(), **(env_overrides or {})}
        log = self.log_dir / f"{name}.log" if self.log_dir else None
        service = ServiceProcess(name, module, env, None, log)
        self.services[name] = service
        service.start()
        return service

    def restart(self, name: str, *, kill: bool = False, timeout: float = 60.0) -> None:
        service = self.services[name]
        service.kill() if kill else service.stop()
        service.start()
        self.wait_healthy(timeout)

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.broker_proc is not None and self.broker_proc.poll() is None:
            self.broker_proc.terminate()
            try:
                self.broker_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.broker_proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AGENTOS_DATA_DIR", ".data"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000")))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_HTTP_PORT", "8001")))
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    stack = DevStack(data_dir=data_dir, gateway_port=args.port, metrics_port=args.metrics_port,
                     demo_api_key=os.environ.get("AGENTOS_DEMO_API_KEY") or None,
                     admin_api_key=os.environ.get("AGENTOS_ADMIN_API_KEY") or None,
                     kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    stopping = False

    def _stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stack.start()
        print(f"""
AgentOS is running (embedded default; data in {data_dir})
  gateway      {stack.gateway_url}   (OpenAPI: {stack.gateway_url}/docs)
  metrics      {stack.metrics_url}
  kafka        {stack.kafka_bootstrap}  (in-memory development broker)
  demo API key {stack.demo_api_key}
  admin key    {stack.admin_api_key}

Try:
  curl -s -H 'Authorization: Bearer {stack.demo_api_key}' {stack.gateway_url}/api/v1/agentos/agents/
Ctrl-C stops everything.
""", flush=True)
        while not stopping:
            for service in stack.services.values():
                if not service.alive():
                    print(f"{service.name} exited (code {service.proc.returncode}); stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("AgentOS stopped.", flush=True)


if __name__ == "__main__":
    main()
