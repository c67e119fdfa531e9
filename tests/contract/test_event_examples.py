"""Every event has an example JSON in shared/events/examples, and every example is valid."""

import json
from pathlib import Path

import pytest

from shared.events import EVENT_TYPES, EventDecodeError, decode, encode
from shared.topics import Topic

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "events" / "examples"


def _type_name(cls) -> str:
    return cls.model_fields["type"].default


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=_type_name)
def test_every_event_type_has_a_valid_example(cls):
    path = EXAMPLES / f"{_type_name(cls)}.json"
    assert path.exists(), f"missing example {path.name}"
    event = decode(path.read_bytes())
    assert isinstance(event, cls)
    assert event.topic in set(Topic)
    # Round trip through the wire format changes nothing.
    assert decode(encode(event)) == event
    assert json.loads(encode(event)) == json.loads(path.read_text())


def test_no_example_without_an_event_type():
    known = {_type_name(cls) for cls in EVENT_TYPES}
    assert {p.stem for p in EXAMPLES.glob("*.json")} == known


def test_every_event_carries_the_envelope():
    for path in EXAMPLES.glob("*.json"):
        body = json.loads(path.read_text())
        for field in ("event_id", "type", "occurred_at", "correlation_id", "user_id", "agent_id", "session_id"):
            assert field in body, f"{path.name} lacks {field}"
        assert body["type"].rsplit(".", 1)[-1].startswith("v"), "type carries its schema version"


@pytest.mark.parametrize("raw", [b"", b"not json", b"{}", b'{"type": "run.requested.v9"}', b"[1,2]"])
def test_garbage_and_unknown_versions_are_rejected(raw):
    with pytest.raises(EventDecodeError):
        decode(raw)


def test_an_unknown_field_is_rejected_rather_than_silently_dropped():
    body = json.loads((EXAMPLES / "run.completed.v1.json").read_text())
    body["surprise"] = 1
    with pytest.raises(EventDecodeError):
        decode(json.dumps(body))


def test_events_are_keyed_by_session():
    event = decode((EXAMPLES / "run.requested.v1.json").read_bytes())
    assert event.key == event.session_id.encode()
    assert event.headers()["event_type"] == "run.requested.v1"


def test_the_asyncapi_document_describes_every_event_on_its_topic():
    from shared.asyncapi import asyncapi_document

    doc = asyncapi_document()
    assert doc["asyncapi"].startswith("3.")
    channels = doc["channels"]
    for cls in EVENT_TYPES:
        name = _type_name(cls)
        assert channels[name]["address"] == str(cls.topic)
    assert set(doc["components"]["schemas"]) >= {cls.__name__ for cls in EVENT_TYPES}
