"""`python -m metrics` as its own process: API + consumer in one process, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.events import decode, encode, utcnow

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "events" / "examples"
ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_examples(agent_id: str) -> list:
    """The contract examples as new events (new ids, now) of a fresh agent."""
    events = []
    for path in sorted(EXAMPLES.glob("*.json")):
        event = decode(path.read_bytes())
        events.append(event.model_copy(update={
            "event_id": uuid.uuid4().hex, "agent_id": agent_id, "occurred_at": utcnow(),
        }))
    return events


@pytest.fixture
def service(kafka, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka[0],
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "AGENTOS_DATA_DIR": str(tmp_path / "data"),
        "METRICS_HTTP_PORT": str(port),
        "METRICS_CONSUMER_GROUP": f"test-metrics-process-{uuid.uuid4().hex[:8]}",
        "METRICS_BATCH_MAX_WAIT_MS": "50",
        "METRICS_QUERY_CACHE_TTL_S": "0",
    }
    log = tmp_path / "metrics.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "metrics"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_serves_the_api_consumes_and_stops_cleanly_on_sigterm(service, kafka):
    proc, url, log = service
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka[0].split(","), acks="all")
    await producer.start()
    try:
        for event in fresh_examples(agent):
            await producer.send_and_wait(str(event.topic), encode(event), key=event.key)
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        deadline = time.monotonic() + 30
        while True:
            body = (await client.get(f"/v1/metrics/agents/{agent}", params={"days": 1})).json()
            if body["totals"]["runs"] == 1:
                break
            assert time.monotonic() < deadline, log.read_text()
        assert (body["totals"]["sessions"], body["totals"]["messages"]) == (1, 2)
        sql = await client.post("/v1/sql", json={"query": f"SELECT count() FROM usage_raw WHERE agent_id = '{agent}'"})
        assert sql.json()["rows"] == [[1]]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text, text
