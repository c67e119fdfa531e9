"""Every Kafka topic and consumer group of AgentOS, in one place.

Each comment says who produces and who consumes. Keys: everything about a session is keyed by
``session_id`` so that one partition (and therefore one consumer) sees a session's commands in
the order they were sent.
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    # gateway -> metrics. SessionCreated / SessionDeleted.
    SESSIONS = "agentos.sessions.v1"
    # gateway (HTTP + webhook) -> agent-runner. RunRequested; key = session_id.
    RUN_COMMANDS = "agentos.run-commands.v1"
    # gateway -> every agent-runner instance (no consumer group). CancelRun. Kept apart from
    # RUN_COMMANDS so a cancel does not queue behind the run it wants to stop.
    RUN_CONTROL = "agentos.run-control.v1"
    # agent-runner -> gateway, metrics. RunStarted / RunCompleted / RunFailed / RunCancelled.
    RUN_EVENTS = "agentos.run-events.v1"
    # agent-runner -> gateway (SSE). RunDelta with a per-run sequence number. Short retention.
    RUN_DELTAS = "agentos.run-deltas.v1"
    # agent-runner -> metrics. UsageRecorded (tokens, cost, latency) once per finished run.
    USAGE = "agentos.usage.v1"
    # any consumer -> operators. Messages that could not be processed, with context headers.
    DEAD_LETTER = "agentos.dead-letter.v1"


class ConsumerGroup(StrEnum):
    AGENT_RUNNER = "agentos.agent-runner"
    METRICS = "agentos.metrics"
    # The gateway's read model (messages, run status). Waiters are woken from the same stream.
    GATEWAY_PROJECTOR = "agentos.gateway-projector"


#: Partitions used when the project creates topics itself (embedded broker, topic job).
DEFAULT_PARTITIONS = 8

#: Retention overrides for the topic-creation job (ms). Deltas are only needed while a
#: client streams or reconnects.
RETENTION_MS: dict[Topic, int] = {
    Topic.RUN_DELTAS: 60 * 60 * 1000,
}


def all_topics() -> list[str]:
    return [t.value for t in Topic]
