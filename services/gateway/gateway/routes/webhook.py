"""``POST /agentos/webhook/`` — the seed's AgentOSWebhookView, signed (see gateway.webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from gateway.access import get_usable_agent
from gateway.auth import Principal
from gateway.db.models import ChatSession, User, WebhookDelivery, WebhookSource
from gateway.deps import Db
from gateway.errors import (
    ApiError,
    AuthenticationError,
    Conflict,
    ValidationFailed,
    error_responses,
    json_body_or_error,
)
from gateway.routes.agentos import get_owned_session
from gateway.validation import StrictBody
from gateway.webhooks import callback_url_allowed, verify
from shared.events import SessionCreated, new_id

router = APIRouter(tags=["webhook"], responses=error_responses(400, 401, 404, 409, 413, 422, 503))


class MessageReceived(StrictBody):
    agent_id: str = Field(min_length=1, max_length=64)
    session_id: str | None = Field(None, max_length=64, description="Omit to start a new session.")
    message: str = Field(min_length=1, max_length=32_000)
    context: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(None, max_length=2000, description="Where the result is POSTed, signed.")
    title: str = Field("Webhook", max_length=200)


class WebhookIn(StrictBody):
    event: Literal["message_received"]
    data: dict[str, Any]


@router.post("/agentos/webhook/", summary="Signed webhook for external producers (no API key)",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["event", "data"],
                 "properties": {"event": {"type": "string", "enum": ["message_received"]},
                                "data": MessageReceived.model_json_schema()}}}}}})
async def webhook(request: Request, db: Db) -> dict[str, Any]:
    """Headers: `webhook-source`, `webhook-id`, `webhook-timestamp`, `webhook-signature`
    (Standard Webhooks, HMAC-SHA256). Event `message_received` runs an agent for the user the
    source acts for; with `callback_url` the result is delivered there, signed, with retries."""
    body = await request.body()
    source_id = request.headers.get("webhook-source", "")
    source = await db.get(WebhookSource, source_id) if 0 < len(source_id) <= 64 else None
    if source is None or not source.is_active:
        raise AuthenticationError("Unknown webhook source")
    msg_id = verify(source.secret, request.headers, body)
    user_row = await db.get(User, source.user_id)
    if user_row is None or not user_row.is_active:
        raise AuthenticationError("The webhook source's user is inactive")
    user = Principal(id=user_row.id, email=user_row.email, is_admin=user_row.is_admin)

    payload = json_body_or_error(body)
    try:
        envelope = WebhookIn.model_validate(payload)
        data = MessageReceived.model_validate(envelope.data)
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError(exc.errors()) from exc
    settings = request.app.state.settings
    if data.callback_url and not callback_url_allowed(data.callback_url, settings.callback_hosts):
        raise ValidationFailed("callback_url: must be http(s) on an allowed host")

    # Replay protection first: the same webhook-id from this source is processed once.
    delivery = WebhookDelivery(id=msg_id, source_id=source.id, event=envelope.event, callback_url=data.callback_url,
                               callback_status="pending" if data.callback_url else None)
    db.add(delivery)
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict("Webhook already received (replayed webhook-id)", error_type="replayed") from exc

    runs = request.app.state.runs
    correlation_id = request.state.correlation_id
    try:
        agent = await get_usable_agent(db, user, data.agent_id)
        if data.session_id:
            session = await get_owned_session(db, user, data.session_id)
        else:
            now = datetime.now(UTC)
            session = ChatSession(id="sess_" + new_id(), user_id=user.id, agent_id=agent.id, title=data.title,
                                  created_at=now, updated_at=now)
            db.add(session)
            await db.commit()
            await runs.publish(SessionCreated(correlation_id=correlation_id, user_id=str(user.id), agent_id=agent.id,
                                              session_id=session.id, agent_name=agent.name, title=data.title))
        run, _ = await runs.submit(db, user=user, agent=agent, session=session, message=data.message,
                                   context=data.context, mode="async", idempotency_key=f"webhook:{source.id}:{msg_id}",
                                   stream=False, correlation_id=correlation_id)
    except ApiError:
        # Nothing was run: forget the id so the sender's retry is not rejected as a replay.
        await db.execute(delete(WebhookDelivery).where(WebhookDelivery.id == msg_id,
                                                       WebhookDelivery.source_id == source.id))
        await db.commit()
        raise
    delivery = await db.get(WebhookDelivery, (msg_id, source.id))
    delivery.run_id = run.id
    await db.commit()
    request.app.state.callbacks.wake.set()
    return {"status": "success", "run_id": run.id, "session_id": session.id}
