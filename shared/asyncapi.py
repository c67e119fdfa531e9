"""The AsyncAPI 3.0 document of every AgentOS event, generated from the contracts in
``shared.events`` (one channel per event type; address = its topic). Served by the gateway at
``/asyncapi.json`` and written by ``python -m shared.asyncapi > asyncapi.json``."""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.events import EVENT_TYPES

# Who sends each event and who reads it (the topic module says the same per topic).
FLOWS: dict[str, str] = {
    "session.created.v1": "gateway -> metrics",
    "session.deleted.v1": "gateway -> metrics",
    "run.requested.v1": "gateway -> agent-runner (consumer group; key = session_id)",
    "run.cancel.v1": "gateway -> every agent-runner instance",
    "run.started.v1": "agent-runner -> gateway",
    "run.delta.v1": "agent-runner -> gateway (SSE)",
    "run.completed.v1": "agent-runner -> gateway, metrics",
    "run.failed.v1": "agent-runner -> gateway, metrics",
    "run.cancelled.v1": "agent-runner -> gateway, metrics",
    "usage.recorded.v1": "agent-runner -> metrics",
}


def asyncapi_document(servers: list[str] | None = None, version: str = "0.1.0") -> dict[str, Any]:
    broker = KafkaBroker(servers or ["kafka:9092"])
    for cls in EVENT_TYPES:
        name = cls.model_fields["type"].default
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        broker.publisher(str(cls.topic), schema=cls, title=name,
                         description=f"{FLOWS.get(name, '')}. {doc}".strip(". ") + ".")
    spec = AsyncAPI(broker, title="AgentOS events", version=version,
                    description="Every event is one JSON object: the envelope (event_id, type, occurred_at, "
                                "correlation_id, user_id, agent_id, session_id, run_id) plus its own fields.")
    return spec.to_specification().to_jsonable()


if __name__ == "__main__":
    print(json.dumps(asyncapi_document(), indent=2))
