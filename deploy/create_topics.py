"""Create every AgentOS Kafka topic, then exit (a one-shot job).

Runs as the ``kafka-init`` service of docker-compose.yml and as the ``agentos-kafka-topics``
Job in deploy/k8s/, from the gateway image::

    python deploy/create_topics.py

Topics, partitions and retention overrides come from ``shared.topics`` (the single source of
truth): every topic of ``all_topics()`` gets ``DEFAULT_PARTITIONS`` partitions and each entry
of ``RETENTION_MS`` becomes a ``retention.ms`` topic config.

Environment:

- ``KAFKA_BOOTSTRAP_SERVERS``      comma separated host:port list (same variable as the services).
- ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``  TLS / SASL, as for the services.
- ``KAFKA_TOPIC_PARTITIONS``       partitions per topic (default ``shared.topics.DEFAULT_PARTITIONS``).
- ``KAFKA_TOPIC_REPLICATION``      replication factor (default 1; use 3 on a 3+ broker cluster).
- ``KAFKA_INIT_TIMEOUT_S``         how long to wait for Kafka to answer (default 60).
- ``KAFKA_TOPIC_INCREASE_PARTITIONS``  ``true`` = grow existing topics that have fewer partitions
  than requested (default ``false``: only warn). Growing moves keys to other partitions, so
  a session's commands may briefly be consumed out of order: do it in a quiet moment.

Idempotent: topics that already exist are left as they are (TopicAlreadyExistsError is not an
error), so running it on every ``docker compose up`` / every deploy is safe. It never deletes
anything and never changes the config of an existing topic.

Exit status: 0 = every topic exists; 1 = Kafka did not answer in time or a topic could not be
created; 2 = bad configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, for_code
from pydantic import ValidationError

from shared.settings import KafkaSettings
from shared.topics import DEFAULT_PARTITIONS, RETENTION_MS, all_topics

log = logging.getLogger("agentos.create_topics")

#: retention.ms overrides by topic name.
RETENTION_MS_BY_NAME: dict[str, int] = {str(topic): ms for topic, ms in RETENTION_MS.items()}


class ConfigError(ValueError):
    pass


class RetryLater(Exception):
    """Kafka answered with a retriable error (e.g. the controller is still electing)."""


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def desired_topics(partitions: int, replication: int) -> list[NewTopic]:
    topics = []
    for name in all_topics():
        configs = {"retention.ms": str(RETENTION_MS_BY_NAME[name])} if name in RETENTION_MS_BY_NAME else None
        topics.append(NewTopic(name, num_partitions=partitions, replication_factor=replication,
                               topic_configs=configs))
    return topics


async def _connect(servers: list[str], deadline: float, security: dict | None = None) -> AIOKafkaAdminClient:
    """Start an admin client, retrying until Kafka answers or the deadline passes.

    ``security``: ``KafkaSettings.aiokafka_security_kwargs()`` (TLS / SASL); None = PLAINTEXT."""
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        admin = AIOKafkaAdminClient(
            bootstrap_servers=servers,
            client_id="agentos-create-topics",
            request_timeout_ms=10_000,
            **(security or {}),
        )
        try:
            await admin.start()
            return admin
        except (KafkaError, OSError) as exc:
            await admin.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Kafka at {','.join(servers)} did not answer ({exc!r})") from exc
            log.info("Kafka not reachable yet (attempt %d, %r); retrying for another %.0f s", attempt, exc, left)
            await asyncio.sleep(min(delay, max(left, 0.1)))
            delay = min(delay * 2, 5.0)


async def _existing_partitions(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of every topic of ``names`` that exists (without auto-creating any)."""
    existing = set(await admin.list_topics()) & set(names)
    if not existing:
        return {}
    counts: dict[str, int] = {}
    for topic in await admin.describe_topics(sorted(existing)):
        name = topic.get("topic") or topic.get("name")
        code = topic.get("error_code", 0)
        if code:
            raise RetryLater(f"describe {name}: {for_code(code).__name__}")
        counts[name] = len(topic.get("partitions") or [])
    return counts


async def _create_missing(admin: AIOKafkaAdminClient, wanted: list[NewTopic], timeout_ms: int) -> list[str]:
    try:
        response = await admin.create_topics(wanted, timeout_ms=timeout_ms)
    except AttributeError as exc:
        # aiokafka sends CreateTopics to the controller named in the cluster metadata; right
        # after a broker starts the metadata may not name one yet (controller is None).
        raise RetryLater(f"no controller in the cluster metadata yet ({exc})") from exc
    spec = {t.name: t for t in wanted}
    created: list[str] = []
    retry: list[str] = []
    failed: list[str] = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        if code == 0:
            created.append(name)
            log.info("created topic %s (%d partitions, replication %d%s)", name, spec[name].num_partitions,
                     spec[name].replication_factor,
                     f", retention.ms {RETENTION_MS_BY_NAME[name]}" if name in RETENTION_MS_BY_NAME else "")
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            log.info("topic %s already exists (created concurrently)", name)
        elif error.retriable:
            retry.append(f"{name}: {error.__name__} {message}".strip())
        else:
            failed.append(f"{name}: {error.__name__} {message}".strip())
    if failed:
        raise RuntimeError("could not create topics: " + "; ".join(failed))
    if retry:
        raise RetryLater("; ".join(retry))
    return created


async def ensure_topics(servers: list[str], partitions: int, replication: int, timeout_s: float,
                        increase_partitions: bool, security: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    wanted = desired_topics(partitions, replication)
    names = [t.name for t in wanted]
    admin = await _connect(servers, deadline, security)
    try:
        delay = 0.5
        while True:
            try:
                existing = await _existing_partitions(admin, names)
                missing = [t for t in wanted if t.name not in existing]
                if missing:
                    await _create_missing(admin, missing, timeout_ms=10_000)
                for name, count in sorted(existing.items()):
                    if count >= partitions:
                        log.info("topic %s exists (%d partitions)", name, count)
                    elif increase_partitions:
                        try:
                            await admin.create_partitions({name: NewPartitions(total_count=partitions)})
                        except AttributeError as exc:  # no controller known yet, as above
                            raise RetryLater(f"no controller in the cluster metadata yet ({exc})") from exc
                        log.warning("topic %s grown from %d to %d partitions", name, count, partitions)
                    else:
                        log.warning("topic %s exists with %d partitions (< %d requested); left as is "
                                    "(KAFKA_TOPIC_INCREASE_PARTITIONS=true grows it)", name, count, partitions)
                # Confirm: every topic is visible in the cluster metadata.
                still_missing = sorted(set(names) - set(await admin.list_topics()))
                if still_missing:
                    raise RetryLater("not yet in metadata: " + ", ".join(still_missing))
                return
            except (RetryLater, KafkaError, OSError) as exc:
                if not _retriable(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"topics not ready before the deadline: {exc}") from exc
                log.info("retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)
    finally:
        await admin.close()


def _retriable(exc: BaseException) -> bool:
    """Worth another attempt before the deadline: the broker is starting, electing a
    controller, or a request timed out. Anything else (bad replication factor, policy
    violation, authorization) fails at once."""
    if isinstance(exc, (RetryLater, OSError, KafkaTimeoutError)):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


def main() -> int:
    logging.basicConfig(level=os.environ.get("AGENTOS_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        kafka = KafkaSettings()
        servers = kafka.servers
        if not servers:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is empty")
        partitions = _env_int("KAFKA_TOPIC_PARTITIONS", DEFAULT_PARTITIONS)
        replication = _env_int("KAFKA_TOPIC_REPLICATION", 1)
        timeout_s = _env_float("KAFKA_INIT_TIMEOUT_S", 60.0)
        increase = _env_bool("KAFKA_TOPIC_INCREASE_PARTITIONS", False)
        security = kafka.aiokafka_security_kwargs()
    # ValidationError: e.g. SASL without a password; OSError (ssl.SSLError): an unreadable PEM.
    except (ConfigError, ValidationError, OSError) as exc:
        log.error("bad configuration: %s", exc)
        return 2
    log.info("ensuring %d topics on %s (%d partitions, replication %d)", len(all_topics()), ",".join(servers),
             partitions, replication)
    try:
        asyncio.run(ensure_topics(servers, partitions, replication, timeout_s, increase, security))
    except (OSError, RuntimeError, KafkaError) as exc:
        log.error("topic creation failed: %s", exc)
        return 1
    log.info("all %d topics present", len(all_topics()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
