"""Webhooks, both directions, signed the Standard Webhooks way.

Inbound (``POST /agentos/webhook/``): the sender names its source (``webhook-source``
header) and signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 under the
source's secret (``webhook-signature: v1,<base64>``). Rejected, with nothing published:
unknown source or bad/missing signature (401), a timestamp more than 5 minutes off (401), a
``webhook-id`` seen before from that source (409).

Outbound callbacks: when a ``message_received`` payload names a ``callback_url``, the run's
result is POSTed there, signed with the same secret, by ``CallbackDispatcher``. Deliveries are
rows in ``webhook_deliveries``, so they survive a gateway restart; failures are retried with
exponential backoff up to ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.db.models import Run, WebhookDelivery, WebhookSource
from gateway.errors import AuthenticationError
from gateway.runs import TERMINAL
from shared.events import new_id

TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"

log = logging.getLogger(__name__)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, body: bytes, *, source: str | None = None, msg_id: str | None = None,
                   timestamp: int | None = None) -> dict[str, str]:
    msg_id = msg_id or "msg_" + new_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(secret, msg_id, timestamp, body), "content-type": "application/json"}
    if source:
        headers["webhook-source"] = source
    return headers


def verify(secret: str, headers, body: bytes, now: float | None = None) -> str:
    """Returns the webhook id; raises AuthenticationError."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp or not signatures or len(msg_id) > 200:
        raise AuthenticationError("Missing webhook-id, webhook-timestamp or webhook-signature header")
    if not timestamp.isdigit():
        raise AuthenticationError("Invalid webhook-timestamp")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise AuthenticationError("webhook-timestamp outside the 5 minute tolerance", error_type="stale_timestamp")
    expected = sign(secret, msg_id, int(timestamp), body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split(" ") if candidate):
        raise AuthenticationError("Invalid webhook signature", error_type="invalid_signature")
    return msg_id


def callback_url_allowed(url: str, allowed_hosts: frozenset[str]) -> bool:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    return not allowed_hosts or parsed.hostname.lower() in allowed_hosts


class CallbackDispatcher:
    """Delivers finished runs to callback URLs; polls the deliveries table (durable)."""

    def __init__(self, sessionmaker: async_sessionmaker, *, max_attempts: int = 6, base_delay_s: float = 0.5,
                 poll_interval_s: float = 0.3, timeout_s: float = 5.0) -> None:
        self.sessionmaker = sessionmaker
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.poll_interval_s = poll_interval_s
        self.client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhook-callbacks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback dispatch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_interval_s)
            self.wake.clear()

    async def deliver_due(self) -> None:
        now = datetime.now(UTC)
        async with self.sessionmaker() as db:
            rows = (await db.execute(
                select(WebhookDelivery, Run, WebhookSource)
                .join(Run, Run.id == WebhookDelivery.run_id)
                .join(WebhookSource, WebhookSource.id == WebhookDelivery.source_id)
                .where(WebhookDelivery.callback_status == "pending", Run.status.in_(TERMINAL))
                .limit(50)
            )).all()
            for delivery, run, source in rows:
                due = delivery.callback_next_at
                if due is not None and due.replace(tzinfo=due.tzinfo or UTC) > now:
                    continue
                await self._attempt(delivery, run, source)
            await db.commit()

    async def _attempt(self, delivery: WebhookDelivery, run: Run, source: WebhookSource) -> None:
        body = orjson.dumps({
            "event": "run_finished", "webhook_id": delivery.id,
            "data": {"run_id": run.id, "session_id": run.session_id, "agent_id": run.agent_id, "status": run.status,
                     "success": run.status == "completed", "response": run.response, "error": run.error,
                     "error_type": run.error_type,
                     "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                               "total_tokens": run.total_tokens, "cost_usd": run.cost_usd}},
        })
        delivery.callback_attempts += 1
        try:
            response = await self.client.post(delivery.callback_url or "", content=body,
                                              headers=signed_headers(source.secret, body, msg_id=f"cb_{run.id}"))
            ok = 200 <= response.status_code < 300
            error = None if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"[:500]
        if ok:
            delivery.callback_status, delivery.callback_error = "delivered", None
        elif delivery.callback_attempts >= self.max_attempts:
            delivery.callback_status, delivery.callback_error = "failed", error
        else:
            delay = self.base_delay_s * 2 ** (delivery.callback_attempts - 1)
            delivery.callback_next_at = datetime.now(UTC) + timedelta(seconds=delay)
            delivery.callback_error = error
