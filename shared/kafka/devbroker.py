"""In-memory Kafka for development and tests: librdkafka's mock cluster, driven through ctypes.

NOT A PRODUCTION BROKER. Everything lives in memory and is lost when the process exits; point
``KAFKA_BOOTSTRAP_SERVERS`` at a real Kafka for production.

librdkafka ships inside the ``confluent-kafka`` wheel (``confluent_kafka.libs/librdkafka-*``)
and contains a Kafka wire-protocol broker for its own tests (``rdkafka_mock.h``, an
experimental API without ABI guarantees: the ``confluent-kafka`` version is pinned). Any Kafka
client (aiokafka, FastStream, kcat, confluent-kafka) talks to it over real TCP.

Use it in-process::

    with DevKafkaBroker() as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)

or as its own process (what ``make run`` and the e2e tests do)::

    python -m shared.kafka.devbroker [--brokers N] [--partitions P] [--bootstrap-file PATH]

which logs a warning banner to stderr and prints exactly one line to stdout,
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:p1[,...]``; ``start_devbroker_process()`` starts it and
reads that line.

Measured with librdkafka 2.16.0 (confluent-kafka 2.16.1) and aiokafka 0.14.0, on Linux:

- The port cannot be chosen. Each mock broker binds ``127.0.0.1:0`` (kernel-assigned port, see
  ``rd_kafka_mock_broker_new()``) and there is neither a configuration property nor an API to
  pick it: ``rd_kafka_mock_broker_set_host_port()`` only changes the host:port *advertised* in
  Metadata, not the listening socket, and ``test.mock.num.brokers`` has no port companion. So
  there is no ``port=`` / ``--port`` (``AGENTOS_DEVBROKER_PORT`` is ignored with a warning):
  read the address from stdout (``KAFKA_BOOTSTRAP_SERVERS=...``) or from ``--bootstrap-file``.
  Listeners are IPv4 loopback only (not ::1, not other interfaces).
- Start-up: creating the cluster and the 7 topics usually takes 1-10 ms, but right after
  creation one call into the mock thread (a topic creation, or the destroy) sometimes stalls
  for ~1.0 s (apparently a missed wake-up of its 1 s poll loop; seen in roughly 1 of 10-40
  fresh clusters, never in a steady-state loop of 1500 calls). ``python -m ...`` prints its line
  ~0.1 s after exec (~1.1 s when that stall hits) and exits ~20 ms after SIGTERM.
- Consumer groups (classic protocol), with ``group_initial_rebalance_delay_ms=0``: the first
  member of a new or empty group joins at once (``start()`` + first ``getone()`` ~5 ms; with
  the mock's default 3000 ms delay, ~3 s). When the last member leaves (LeaveGroup), the mock
  keeps the group "Joining" for ``session_timeout_ms - 1000`` ms (the leaver's value; the full
  value if <= 1000) and a member that joins inside that window waits for the rest of it: a
  restarted single consumer pays up to ``session_timeout_ms - 1000``, so keep it small in
  dev/tests. The new member resumes from the committed offsets.
- A second *concurrent* member of a live group fails (SyncGroup ``InvalidRequestError``, after
  which the clients can hang in ``stop()``): one member per group at a time (see
  /work/shared/docs/platform-notes.md for the test-only workaround).
- ``rd_kafka_mock_topic_create`` accepts 0 partitions, an empty name and a replication factor
  above the broker count without complaint; ``create_topic`` rejects the first two and caps
  the replication factor at the broker count. An existing topic gives TOPIC_ALREADY_EXISTS.
- Unknown topics are auto-created on first use with 4 partitions (not ``DEFAULT_PARTITIONS``):
  create extra topics up-front with ``create_topic``.
- ``set_broker_down`` closes the broker's connections and its listener (connect: ECONNREFUSED);
  an aiokafka send waits and completes once ``set_broker_up`` listens again on the same port.
  Leadership does not move.
- Stop clients before destroying the cluster: a consumer whose cluster vanished retries for
  ever. The destroy itself usually takes < 1 ms.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from shared.topics import DEFAULT_PARTITIONS, all_topics

__all__ = [
    "BOOTSTRAP_LINE_PREFIX",
    "DevBrokerError",
    "DevKafkaBroker",
    "find_librdkafka",
    "main",
    "start_devbroker_process",
]

log = logging.getLogger("agentos.devbroker")

#: The one line the ``__main__`` entry point prints on stdout, followed by the servers.
BOOTSTRAP_LINE_PREFIX = "KAFKA_BOOTSTRAP_SERVERS="

#: Set this to a librdkafka shared library to use it instead of the one inside the wheel.
LIBRDKAFKA_ENV = "AGENTOS_LIBRDKAFKA"

_RD_KAFKA_PRODUCER = 0  # rd_kafka_type_t
_RD_KAFKA_CONF_OK = 0  # rd_kafka_conf_res_t
_ERR_TOPIC_ALREADY_EXISTS = 36  # rd_kafka_resp_err_t
_MAX_REPLICATION_FACTOR = 3


class DevBrokerError(RuntimeError):
    """The development broker could not be started or driven."""


# --------------------------------------------------------------------------------------------
# librdkafka through ctypes
# --------------------------------------------------------------------------------------------


def find_librdkafka() -> Path:
    """Path of the librdkafka shared library bundled in the installed ``confluent-kafka`` wheel.

    ``$AGENTOS_LIBRDKAFKA`` overrides it. The wheel's file name carries a hash suffix
    (``librdkafka-<hash>.so.1`` on Linux, ``librdkafka.1.dylib`` on macOS), so it is globbed.
    """
    override = os.environ.get(LIBRDKAFKA_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise DevBrokerError(f"{LIBRDKAFKA_ENV}={override} is not a file")
        return path

    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or not spec.submodule_search_locations:
        raise DevBrokerError(
            "librdkafka not found: the 'confluent-kafka' package is not installed "
            "(it ships librdkafka, which provides the development broker). "
            f"Run `uv sync`, or set {LIBRDKAFKA_ENV} to a librdkafka shared library."
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    site = pkg_dir.parent
    patterns = [
        (site / "confluent_kafka.libs", "librdkafka*.so*"),  # Linux (auditwheel)
        (pkg_dir / ".dylibs", "librdkafka*.dylib"),  # macOS (delocate)
        (site / "confluent_kafka.libs", "librdkafka*.dll"),  # Windows (delvewheel)
        (pkg_dir, "librdkafka*"),
    ]
    for folder, pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    raise DevBrokerError(
        f"librdkafka not found next to confluent_kafka in {site} "
        f"(looked for {', '.join(str(f / p) for f, p in patterns)}). "
        f"Reinstall confluent-kafka from its binary wheel (`uv sync`), or set {LIBRDKAFKA_ENV}."
    )


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = find_librdkafka()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise DevBrokerError(f"cannot load librdkafka from {path}: {exc}") from exc

        vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
        # (name, restype, argtypes) exactly as in rdkafka.h / rdkafka_mock.h (librdkafka 2.16).
        signatures = [
            ("rd_kafka_version_str", cp, []),
            ("rd_kafka_err2str", cp, [ctypes.c_int]),
            ("rd_kafka_conf_new", vp, []),
            ("rd_kafka_conf_destroy", None, [vp]),
            ("rd_kafka_conf_set", ctypes.c_int, [vp, cp, cp, cp, ctypes.c_size_t]),
            ("rd_kafka_new", vp, [ctypes.c_int, vp, cp, ctypes.c_size_t]),
            ("rd_kafka_destroy", None, [vp]),
            ("rd_kafka_mock_cluster_new", vp, [vp, ctypes.c_int]),
            ("rd_kafka_mock_cluster_destroy", None, [vp]),
            ("rd_kafka_mock_cluster_bootstraps", cp, [vp]),
            ("rd_kafka_mock_topic_create", ctypes.c_int, [vp, cp, ctypes.c_int, ctypes.c_int]),
            ("rd_kafka_mock_group_initial_rebalance_delay_ms", None, [vp, i32]),
            ("rd_kafka_mock_broker_set_down", ctypes.c_int, [vp, i32]),
            ("rd_kafka_mock_broker_set_up", ctypes.c_int, [vp, i32]),
        ]
        missing = []
        for name, restype, argtypes in signatures:
            try:
                fn = getattr(lib, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
        if missing:
            raise DevBrokerError(
                f"{path} lacks {', '.join(missing)}: this librdkafka has no (or an older) mock "
                "cluster. Use the confluent-kafka version pinned in pyproject.toml."
            )
        _lib = lib
        return lib


def _err2str(lib: ctypes.CDLL, err: int) -> str:
    return (lib.rd_kafka_err2str(err) or b"?").decode(errors="replace")


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------


class DevKafkaBroker:
    """An in-process librdkafka mock cluster with every AgentOS topic pre-created.

    Broker ids are 1..``brokers``. Thread-safe: the mock cluster runs on its own librdkafka
    thread and every call here is a blocking request to it.
    """

    def __init__(
        self,
        brokers: int = 1,
        partitions: int = DEFAULT_PARTITIONS,
        *,
        topics: Iterable[str] | None = None,
        group_initial_rebalance_delay_ms: int = 0,
    ) -> None:
        if brokers < 1:
            raise ValueError("brokers must be >= 1")
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.brokers = brokers
        self.partitions = partitions
        self.topics: list[str] = list(all_topics() if topics is None else topics)
        self.group_initial_rebalance_delay_ms = group_initial_rebalance_delay_ms
        self._lib: ctypes.CDLL | None = None
        self._rk: int | None = None
        self._mc: int | None = None
        self._bootstrap_servers: str | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DevKafkaBroker:
        with self._lock:
            if self._mc is not None:
                return self
            lib = _load()
            errstr = ctypes.create_string_buffer(512)
            conf = lib.rd_kafka_conf_new()
            # The owning handle never connects anywhere: silence its NOTICE "No
            # bootstrap.servers configured" but keep the mock's warnings and errors.
            if (
                lib.rd_kafka_conf_set(conf, b"log_level", b"4", errstr, len(errstr))
                != _RD_KAFKA_CONF_OK
            ):
                lib.rd_kafka_conf_destroy(conf)
                raise DevBrokerError(f"rd_kafka_conf_set: {errstr.value.decode()}")
            rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
            if not rk:  # on failure the conf is still ours
                lib.rd_kafka_conf_destroy(conf)
                raise DevBrokerError(f"rd_kafka_new failed: {errstr.value.decode()}")
            mc = lib.rd_kafka_mock_cluster_new(rk, self.brokers)
            if not mc:
                lib.rd_kafka_destroy(rk)
                raise DevBrokerError("rd_kafka_mock_cluster_new failed (see librdkafka log)")
            self._lib, self._rk, self._mc = lib, rk, mc
            self._bootstrap_servers = lib.rd_kafka_mock_cluster_bootstraps(mc).decode()
        try:
            lib.rd_kafka_mock_group_initial_rebalance_delay_ms(
                mc, self.group_initial_rebalance_delay_ms
            )
            for topic in self.topics:
                self.create_topic(topic, self.partitions, exist_ok=True)
        except BaseException:
            self.stop()
            raise
        log.debug(
            "mock cluster up: %s (librdkafka %s)",
            self._bootstrap_servers,
            lib.rd_kafka_version_str().decode(),
        )
        return self

    def stop(self) -> None:
        """Destroy the cluster (idempotent). Stop clients first: they would retry for ever."""
        with self._lock:
            lib, rk, mc = self._lib, self._rk, self._mc
            self._rk = self._mc = None
            self._bootstrap_servers = None
            if lib is None:
                return
            if mc:
                lib.rd_kafka_mock_cluster_destroy(mc)
            if rk:
                lib.rd_kafka_destroy(rk)

    close = stop

    def __enter__(self) -> DevKafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._mc is not None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:p1[,127.0.0.1:p2...]`` (broker 1 first)."""
        if self._bootstrap_servers is None:
            raise DevBrokerError("the development broker is not running")
        return self._bootstrap_servers

    # -- control ---------------------------------------------------------------------------

    def _handle(self) -> tuple[ctypes.CDLL, int]:
        lib, mc = self._lib, self._mc
        if lib is None or mc is None:
            raise DevBrokerError("the development broker is not running")
        return lib, mc

    def create_topic(
        self,
        name: str,
        partitions: int = DEFAULT_PARTITIONS,
        *,
        replication_factor: int | None = None,
        exist_ok: bool = False,
    ) -> bool:
        """Create ``name``; returns False if it existed and ``exist_ok`` (partitions unchanged).

        The replication factor defaults to ``min(brokers, 3)`` and is capped at ``brokers``.
        """
        if not name:
            raise ValueError("topic name must not be empty")
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        rf = replication_factor or min(self.brokers, _MAX_REPLICATION_FACTOR)
        rf = max(1, min(rf, self.brokers))
        lib, mc = self._handle()
        err = lib.rd_kafka_mock_topic_create(mc, name.encode(), partitions, rf)
        if err == _ERR_TOPIC_ALREADY_EXISTS and exist_ok:
            return False
        if err:
            raise DevBrokerError(f"create topic {name!r}: {_err2str(lib, err)} ({err})")
        return True

    def set_broker_down(self, broker_id: int) -> None:
        """Disconnect broker ``broker_id`` (1..N, -1 = all) and refuse new connections.

        Partition leadership does not move: clients of the partitions it leads wait for it.
        """
        lib, mc = self._handle()
        err = lib.rd_kafka_mock_broker_set_down(mc, broker_id)
        if err:
            raise DevBrokerError(f"set broker {broker_id} down: {_err2str(lib, err)} ({err})")

    def set_broker_up(self, broker_id: int) -> None:
        """Accept connections again on broker ``broker_id`` (same port; -1 = all)."""
        lib, mc = self._handle()
        err = lib.rd_kafka_mock_broker_set_up(mc, broker_id)
        if err:
            raise DevBrokerError(f"set broker {broker_id} up: {_err2str(lib, err)} ({err})")

    def __repr__(self) -> str:
        state = self._bootstrap_servers or "stopped"
        return f"DevKafkaBroker(brokers={self.brokers}, partitions={self.partitions}, {state})"


# --------------------------------------------------------------------------------------------
# As its own process
# --------------------------------------------------------------------------------------------

_BANNER = (
    "IN-MEMORY DEVELOPMENT BROKER (librdkafka mock cluster) at %s. "
    "NOT FOR PRODUCTION: no persistence, every message is lost when this process exits, "
    "no CreateTopics/ACLs/transactions. For production point KAFKA_BOOTSTRAP_SERVERS at a "
    "real Kafka cluster."
)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.kafka.devbroker",
        description="Run an in-memory Kafka (librdkafka mock cluster) for development. "
        f"Prints '{BOOTSTRAP_LINE_PREFIX}<servers>' on stdout once ready. "
        "The port is chosen by the kernel: librdkafka offers no way to fix it.",
    )
    parser.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help=f"partitions of every pre-created topic (default {DEFAULT_PARTITIONS})",
    )
    parser.add_argument(
        "--bootstrap-file",
        type=Path,
        help="also write the bootstrap servers to this file (removed on exit)",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the parent process dies (used by start_devbroker_process)",
    )
    parser.add_argument("--log-level", default=os.environ.get("AGENTOS_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    if os.environ.get("AGENTOS_DEVBROKER_PORT"):
        log.warning(
            "AGENTOS_DEVBROKER_PORT is ignored: librdkafka's mock brokers always listen on a "
            "kernel-assigned port (read it from stdout or --bootstrap-file)"
        )

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("%s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    parent = os.getppid()

    broker = DevKafkaBroker(brokers=args.brokers, partitions=args.partitions)
    try:
        broker.start()
    except (DevBrokerError, ValueError) as exc:
        log.error("cannot start the development broker: %s", exc)
        return 1
    try:
        servers = broker.bootstrap_servers
        log.warning(_BANNER, servers)
        log.info(
            "%d broker(s); topics (%d partitions each): %s",
            broker.brokers,
            broker.partitions,
            ", ".join(broker.topics),
        )
        if args.bootstrap_file:
            _write_atomically(args.bootstrap_file, servers + "\n")
        sys.stdout.write(f"{BOOTSTRAP_LINE_PREFIX}{servers}\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if args.exit_with_parent and os.getppid() != parent:
                log.warning("parent process %d is gone, shutting down", parent)
                break
    finally:
        broker.stop()
        if args.bootstrap_file:
            args.bootstrap_file.unlink(missing_ok=True)
    log.info("development broker stopped")
    return 0


def start_devbroker_process(
    *,
    brokers: int = 1,
    partitions: int = DEFAULT_PARTITIONS,
    bootstrap_file: str | os.PathLike[str] | None = None,
    timeout: float = 20.0,
    exit_with_parent: bool = True,
    python: str | None = None,
    env: dict[str, str] | None = None,
    stderr: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m shared.kafka.devbroker`` and wait (at most ``timeout`` s) until it
    prints its bootstrap servers. Returns ``(process, bootstrap_servers)``.

    Stop it with ``process.terminate()`` (SIGTERM; it exits 0) then ``process.wait()``.
    stderr is inherited unless ``stderr`` is given. Raises ``DevBrokerError`` (after killing
    the process) if the line does not come in time or the process exits first.
    """
    cmd = [
        python or sys.executable,
        "-m",
        "shared.kafka.devbroker",
        "--brokers",
        str(brokers),
        "--partitions",
        str(partitions),
    ]
    if bootstrap_file is not None:
        cmd += ["--bootstrap-file", os.fspath(bootstrap_file)]
    if exit_with_parent:
        cmd.append("--exit-with-parent")
    # Make ``shared`` importable even when the project is not installed in the interpreter.
    child_env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")

    # Own session: a Ctrl-C in the terminal reaches the supervisor only, which stops the
    # services first and the broker last (--exit-with-parent still covers a crashed parent).
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=child_env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace").strip()
                    if text.startswith(BOOTSTRAP_LINE_PREFIX):
                        return proc, text[len(BOOTSTRAP_LINE_PREFIX) :]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DevBrokerError(
                        f"development broker did not report its address within {timeout} s"
                    )
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = proc.wait(timeout=5)
                    raise DevBrokerError(
                        f"development broker exited with code {rc} before it was ready "
                        "(see its stderr)"
                    )
                buf += chunk
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


if __name__ == "__main__":
    sys.exit(main())
