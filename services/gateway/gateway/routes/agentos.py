"""The seed's HTTP API under ``/api/v1/agentos/`` (003 "API Endpoints"), plus what a client of
such an API needs: one session with its messages, rename/delete, a run's status, cancel."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import func, select

from gateway.access import get_owned_session, get_usable_agent, list_usable_agents
from gateway.auth import Principal
from gateway.db.models import Agent, ChatSession, Message, Run
from gateway.deps import Db, User
from gateway.errors import ApiError, GatewayTimeout, NotFound, ValidationFailed, error_responses, json_body_or_error
from gateway.ratelimit import check_concurrent_runs
from gateway.schemas import (
    AgentOut,
    AgentsOut,
    CreateSessionIn,
    CreateSessionOut,
    InfoOut,
    MessageOut,
    RenameSessionIn,
    RunAccepted,
    RunOut,
    SendMessageIn,
    SendMessageOut,
    SessionDetailOut,
    SessionOut,
    SessionsOut,
    UsageOut,
    iso,
)
from shared.events import SessionCreated, SessionDeleted, new_id

router = APIRouter(prefix="/api/v1/agentos", tags=["agentos"], responses=error_responses(400, 401, 404, 413, 422, 429, 503))

Mode = Literal["wait", "async", "stream"]


def _settings(request: Request):
    return request.app.state.settings


def _runs(request: Request):
    return request.app.state.runs


def _correlation_id(request: Request) -> str:
    return getattr(request.state, "correlation_id", None) or new_id()


# -- service operations (the seed's AgentOSService, shared by the REST routes and the
#    action-dispatching main endpoint) ------------------------------------------------------
async def list_agents(db: Db, user: Principal) -> list[AgentOut]:
    return [AgentOut.of(a) for a in await list_usable_agents(db, user)]


async def info(db: Db, user: Principal) -> InfoOut:
    agents = await list_agents(db, user)
    return InfoOut(id=f"agentos_user_{user.id}", description=f"AgentOS instance for {user.email}",
                   agents_count=len(agents), available_agents=agents)


async def create_session(request: Request, db: Db, user: Principal, body: CreateSessionIn) -> CreateSessionOut:
    agent = await get_usable_agent(db, user, body.agent_id)
    now = datetime.now(UTC)
    session = ChatSession(id="sess_" + new_id(), user_id=user.id, agent_id=agent.id, title=body.title,
                          created_at=now, updated_at=now)
    db.add(session)
    await db.commit()
    event = SessionCreated(correlation_id=_correlation_id(request), user_id=str(user.id), agent_id=agent.id,
                           session_id=session.id, agent_name=agent.name, title=body.title, occurred_at=now)
    try:
        await _runs(request).publish(event)
    except ApiError:
        await db.delete(session)
        await db.commit()
        raise
    return CreateSessionOut(session_id=session.id)


def _check_limits(request: Request, body: SendMessageIn) -> None:
    settings = _settings(request)
    if len(body.message) > settings.max_message_chars:
        raise ValidationFailed(f"message: at most {settings.max_message_chars} characters")
    if len(orjson.dumps(body.context)) > settings.max_context_bytes:
        raise ValidationFailed(f"context: at most {settings.max_context_bytes} bytes of JSON")


def _run_out(run: Run) -> RunOut:
    return RunOut(run_id=run.id, session_id=run.session_id, agent_id=run.agent_id, agent_version=run.agent_version,
                  status=run.status, response=run.response, error=run.error, error_type=run.error_type,
                  usage=UsageOut(input_tokens=run.input_tokens, output_tokens=run.output_tokens,
                                 total_tokens=run.total_tokens, cost_usd=run.cost_usd, latency_ms=run.latency_ms,
                                 ttft_ms=run.ttft_ms),
                  created_at=iso(run.created_at), started_at=iso(run.started_at), finished_at=iso(run.finished_at))


def _send_result(run: Run) -> JSONResponse:
    body = SendMessageOut(success=run.status == "completed", response=run.response, session_id=run.session_id,
                          agent_id=run.agent_id, timestamp=iso(run.finished_at or run.created_at) or "",
                          run_id=run.id, error=run.error, error_type=run.error_type)
    if run.status == "completed":
        return JSONResponse(body.model_dump(exclude_none=True))
    # A failed or cancelled run is not a server error: the envelope carries what happened.
    status_code = 200
    payload = body.model_dump()
    payload["error_type"] = run.error_type or ("cancelled" if run.status == "cancelled" else "agent_error")
    return JSONResponse(payload, status_code=status_code)


async def send_message(request: Request, db: Db, user: Principal, body: SendMessageIn, mode: Mode,
                       idempotency_key: str | None) -> JSONResponse:
    _check_limits(request, body)
    agent = await get_usable_agent(db, user, body.agent_id)
    session = await get_owned_session(db, user, body.session_id)
    if session.agent_id != agent.id:
        raise ValidationFailed(f"Session {session.id} belongs to agent {session.agent_id}, not {agent.id}",
                               error_type="session_agent_mismatch")
    if not idempotency_key or await _runs(request).find_idempotent(db, user, idempotency_key) is None:
        await check_concurrent_runs(db, user.id, _settings(request).max_concurrent_runs)
    runs = _runs(request)
    run, _created = await runs.submit(db, user=user, agent=agent, session=session, message=body.message,
                                      context=body.context, mode=mode, idempotency_key=idempotency_key,
                                      stream=mode in ("stream", "async"), correlation_id=_correlation_id(request))
    # Async runs stream too, so a client may attach to /runs/{id}/stream/ instead of polling.
    if mode == "stream":
        await db.close()  # do not hold a connection for the length of the stream
        return _sse_response(request, run.id, last_seq=-1)
    if mode == "async":
        accepted = RunAccepted(run_id=run.id, status=run.status, session_id=run.session_id, agent_id=run.agent_id,
                               poll_url=f"/api/v1/agentos/runs/{run.id}/",
                               stream_url=f"/api/v1/agentos/runs/{run.id}/stream/")
        return JSONResponse(accepted.model_dump(), status_code=202)
    await db.close()  # the wait polls with its own short sessions
    finished = await runs.wait(run.id, _settings(request).wait_timeout_s)
    if finished is None:
        raise GatewayTimeout(
            f"The agent did not answer within {_settings(request).wait_timeout_s:g}s; the run continues. "
            f"Poll /api/v1/agentos/runs/{run.id}/ for its result.",
            extra={"run_id": run.id, "session_id": run.session_id},
        )
    return _send_result(finished)


# -- REST routes -----------------------------------------------------------------------------
@router.get("/agents/", response_model=AgentsOut, summary="Agents the caller may use")
async def agents_api(db: Db, user: User) -> AgentsOut:
    """The seed's `agentos_agents_api`: agents that are global, of a team the caller belongs to,
    or that the caller has an active subscription to."""
    return AgentsOut(agents=await list_agents(db, user))


@router.get("/agents/{agent_id}/", response_model=AgentOut, summary="One agent")
async def agent_detail(agent_id: str, db: Db, user: User) -> AgentOut:
    return AgentOut.of(await get_usable_agent(db, user, agent_id))


@router.post("/create-session/", response_model=CreateSessionOut, summary="Create a chat session")
async def create_session_api(request: Request, body: CreateSessionIn, db: Db, user: User) -> CreateSessionOut:
    return await create_session(request, db, user, body)


@router.post("/send-message/", response_model=SendMessageOut, summary="Send a message to an agent",
             responses={202: {"model": RunAccepted}, 504: {"description": "The run did not finish in time"}})
async def send_message_api(
    request: Request, body: SendMessageIn, db: Db, user: User,
    mode: Annotated[Mode, Query(description="wait (default): answer with the result; async: 202 + run id; "
                                            "stream: Server-Sent Events of the response as it is produced")] = "wait",
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Publishes the message to the agent-runner over Kafka. `mode=wait` answers when the run
    finishes (the seed's response shape); `mode=async` answers 202 with a run id to poll.
    A retried request with the same `Idempotency-Key` returns the same run."""
    return await send_message(request, db, user, body, mode, idempotency_key)


@router.get("/sessions/", response_model=SessionsOut, summary="The caller's sessions, newest first")
async def sessions_api(request: Request, db: Db, user: User,
                       page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> SessionsOut:
    size = _settings(request).page_size
    mine = (ChatSession.user_id == user.id, ChatSession.deleted_at.is_(None))
    total = (await db.execute(select(func.count()).select_from(ChatSession).where(*mine))).scalar_one()
    rows = (await db.execute(
        select(ChatSession, Agent.name).join(Agent, Agent.id == ChatSession.agent_id).where(*mine)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc()).offset((page - 1) * size).limit(size)
    )).all()
    sessions = [SessionOut(id=s.id, title=s.title, agent_name=name, agent_id=s.agent_id, created_at=iso(s.created_at),
                           updated_at=iso(s.updated_at)) for s, name in rows]
    return SessionsOut(sessions=sessions, page=page, total_pages=max(1, math.ceil(total / size)), total_sessions=total)


@router.get("/sessions/{session_id}/", response_model=SessionDetailOut, summary="One session with its messages")
async def session_detail(session_id: str, db: Db, user: User) -> SessionDetailOut:
    session = await get_owned_session(db, user, session_id)
    agent = await db.get(Agent, session.agent_id)
    messages = (await db.execute(select(Message).where(Message.session_id == session.id)
                                 .order_by(Message.created_at, Message.role.desc()))).scalars().all()
    return SessionDetailOut(
        id=session.id, title=session.title, agent_name=agent.name if agent else "", agent_id=session.agent_id,
        created_at=iso(session.created_at), updated_at=iso(session.updated_at),
        messages=[MessageOut(id=m.id, role=m.role, content=m.content, run_id=m.run_id, created_at=iso(m.created_at),
                             input_tokens=m.input_tokens, output_tokens=m.output_tokens, latency_ms=m.latency_ms)
                  for m in messages],
    )


@router.patch("/sessions/{session_id}/", response_model=SessionOut, summary="Rename a session")
async def rename_session(session_id: str, body: RenameSessionIn, db: Db, user: User) -> SessionOut:
    session = await get_owned_session(db, user, session_id)
    session.title = body.title
    session.updated_at = datetime.now(UTC)
    await db.commit()
    agent = await db.get(Agent, session.agent_id)
    return SessionOut(id=session.id, title=session.title, agent_name=agent.name if agent else "",
                      agent_id=session.agent_id, created_at=iso(session.created_at), updated_at=iso(session.updated_at))


@router.delete("/sessions/{session_id}/", summary="Delete a session")
async def delete_session(request: Request, session_id: str, db: Db, user: User) -> dict[str, Any]:
    session = await get_owned_session(db, user, session_id)
    session.deleted_at = datetime.now(UTC)
    await db.commit()
    await _runs(request).publish(SessionDeleted(correlation_id=_correlation_id(request), user_id=str(user.id),
                                                agent_id=session.agent_id, session_id=session.id))
    return {"success": True, "session_id": session.id}


async def _owned_run(db: Db, user: Principal, run_id: str) -> Run:
    run = await db.get(Run, run_id)
    if run is None or run.user_id != user.id:
        raise NotFound(f"Run not found: {run_id}")
    session = await db.get(ChatSession, run.session_id)
    if session is None or session.deleted_at is not None:
        raise NotFound(f"Run not found: {run_id}")
    return run


def _sse_response(request: Request, run_id: str, last_seq: int) -> StreamingResponse:
    app = request.app
    stream = app.state.deltas.stream(run_id, app.state.sessionmaker, app.state.runs.waiters, last_seq=last_seq,
                                     timeout_s=max(_settings(request).wait_timeout_s, 600.0),
                                     poll_interval_s=_settings(request).wait_poll_interval_s)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-ID": run_id})


@router.get("/runs/{run_id}/stream/", summary="Server-Sent Events of a run (resumable)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`delta` events (id = sequence number) then one `done` event"}})
async def run_stream(request: Request, run_id: str, db: Db, user: User,
                     last_event_id: Annotated[str | None, Header(max_length=32)] = None) -> StreamingResponse:
    """Reconnect with `Last-Event-ID: <seq>` to resume after the last chunk received."""
    run = await _owned_run(db, user, run_id)
    last_seq = -1
    if last_event_id is not None:
        if last_event_id == "done":
            last_seq = 1 << 30
        elif re.fullmatch(r"-?[0-9]{1,9}", last_event_id):
            last_seq = int(last_event_id)
        else:
            raise ValidationFailed("Last-Event-ID must be a chunk sequence number")
    await db.close()  # do not hold a connection for the length of the stream
    return _sse_response(request, run.id, last_seq)


@router.get("/runs/{run_id}/", response_model=RunOut, summary="A run's status and result")
async def run_detail(run_id: str, db: Db, user: User) -> RunOut:
    return _run_out(await _owned_run(db, user, run_id))


@router.post("/runs/{run_id}/cancel/", response_model=RunOut, summary="Cancel a queued or running run")
async def cancel_run(request: Request, run_id: str, db: Db, user: User) -> RunOut:
    run = await _owned_run(db, user, run_id)
    if run.status not in ("completed", "failed", "cancelled"):
        await _runs(request).cancel(run, user)
    return _run_out(run)


@router.get("/info/", response_model=InfoOut, summary="This user's AgentOS instance")
async def info_api(db: Db, user: User) -> InfoOut:
    return await info(db, user)


@router.get("/fastapi/", summary="Where this API describes itself")
async def fastapi_api(request: Request, user: User) -> dict[str, Any]:
    return {"message": "AgentOS FastAPI app is available", "app_id": f"agentos_app_{user.id}",
            "openapi_url": str(request.url_for("openapi")), "docs_url": "/docs",
            "asyncapi_url": "/asyncapi.json", "version": request.app.version}


# -- the seed's main endpoint: GET ?action=info|agents, POST {"action": ...} -----------------------
@router.get("/", summary="Main API (GET actions: info, agents)")
async def main_get(db: Db, user: User, action: Annotated[str, Query(max_length=32)] = "info") -> Any:
    if action == "info":
        return await info(db, user)
    if action == "agents":
        return AgentsOut(agents=await list_agents(db, user))
    raise ApiError(f"Unknown action {action!r}; GET supports info, agents", error_type="invalid_action")


_MAIN_POST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["send_message", "create_session"]},
            "agent_id": {"type": "string", "maxLength": 64},
            "session_id": {"type": "string", "maxLength": 64, "description": "send_message only"},
            "message": {"type": "string", "maxLength": 32000, "description": "send_message only"},
            "context": {"type": "object", "description": "send_message only"},
            "title": {"type": "string", "maxLength": 200, "description": "create_session only"},
        },
    }}},
}


@router.post("/", summary="Main API (POST actions: send_message, create_session)",
             openapi_extra={"requestBody": _MAIN_POST_BODY})
async def main_post(request: Request, db: Db, user: User,
                    mode: Annotated[Mode, Query()] = "wait",
                    idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    payload = json_body_or_error(await request.body())
    if not isinstance(payload, dict):
        raise ValidationFailed("body must be a JSON object")
    action = payload.pop("action", None)
    from pydantic import ValidationError

    try:
        if action == "send_message":
            return await send_message(request, db, user, SendMessageIn.model_validate(payload), mode, idempotency_key)
        if action == "create_session":
            return await create_session(request, db, user, CreateSessionIn.model_validate(payload))
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError(exc.errors()) from exc
    raise ApiError(f"Unknown action {action!r}; POST supports send_message, create_session",
                   error_type="invalid_action" if action else "missing_fields")
