"""Metrics API: authorization here, numbers from the metrics service (ClickHouse).

Only the metrics process may open embedded ClickHouse, so the gateway proxies its query API
and adds the rules: users see their own usage; admins see anyone's and the system view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from gateway.access import get_usable_agent
from gateway.db.models import Agent
from gateway.deps import Db, User
from gateway.errors import ApiError, NotFound, PermissionDenied, ServiceUnavailable, error_responses
from gateway.validation import StrictBody

router = APIRouter(prefix="/api/v1/agentos/metrics", tags=["metrics"], responses=error_responses(400, 401, 403, 404, 422, 429, 503))

Days = Annotated[int, Query(ge=1, le=3650, description="Look-back window in days (ignored when from/to are given)")]
From = Annotated[datetime | None, Query(alias="from", description="Window start (ISO 8601)")]
To = Annotated[datetime | None, Query(alias="to", description="Window end (ISO 8601)")]
Bucket = Annotated[Literal["hour", "day"], Query(description="Series bucket")]


def _params(days: int, from_: datetime | None, to: datetime | None, bucket: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"days": days, "bucket": bucket, **{k: v for k, v in extra.items() if v is not None}}
    if from_ is not None:
        params["from"] = from_.isoformat()
    if to is not None:
        params["to"] = to.isoformat()
    return params


async def _query(request: Request, path: str, params: dict[str, Any]) -> Any:
    client: httpx.AsyncClient = request.app.state.metrics_client
    try:
        response = await client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Metrics service unavailable: {type(exc).__name__}",
                                 headers={"Retry-After": "5"}) from exc
    if response.status_code >= 500:
        raise ServiceUnavailable("Metrics service failed to answer", headers={"Retry-After": "5"})
    if response.status_code >= 400:
        try:
            error = response.json().get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            message = None
        message = message or response.text
        raise ApiError(str(message)[:500], status_code=response.status_code if response.status_code < 500 else 400,
                       error_type="validation")
    return response.json()


@router.get("/agents/{agent_id}/", summary="Usage and performance of one agent")
async def agent_metrics(request: Request, agent_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")], db: Db, user: User, days: Days = 30, from_: From = None,
                        to: To = None, bucket: Bucket = "day") -> Any:
    """Admins see every user's usage of the agent; other users see their own usage of agents
    they may use."""
    if user.is_admin:
        if await db.get(Agent, agent_id) is None:
            raise NotFound(f"Agent not found: {agent_id}")
        restrict = None
    else:
        await get_usable_agent(db, user, agent_id)
        restrict = str(user.id)
    await db.close()  # no connection held while the metrics service answers
    return await _query(request, f"/v1/metrics/agents/{agent_id}",
                        _params(days, from_, to, bucket, user_id=restrict))


@router.get("/users/{user_ref}/", summary="Usage of one user ('me' for the caller)")
async def user_metrics(request: Request, user: User,
                       user_ref: Annotated[str, Path(pattern=r"^(me|[1-9][0-9]{0,9})$",
                                                     description="A user id, or `me`")], days: Days = 30, from_: From = None,
                       to: To = None, bucket: Bucket = "day") -> Any:
    target = str(user.id) if user_ref == "me" else user_ref
    if target != str(user.id) and not user.is_admin:
        # Same answer as for a user that does not exist: no probing of other accounts.
        raise NotFound(f"User not found: {user_ref}")
    return await _query(request, f"/v1/metrics/users/{target}", _params(days, from_, to, bucket))


class SqlIn(StrictBody):
    query: str = Field(min_length=1, max_length=20_000)


@router.post("/sql/", summary="Read-only SQL over the metrics database (admins)")
async def metrics_sql(request: Request, body: SqlIn, user: User) -> Any:
    """Only the metrics process may open embedded ClickHouse, so analysts query through here:
    read-only, with execution-time and row limits enforced by the metrics service."""
    if not user.is_admin:
        raise PermissionDenied("SQL access is for admins")
    client: httpx.AsyncClient = request.app.state.metrics_client
    try:
        response = await client.post("/v1/sql", json={"query": body.query}, timeout=60)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable("Metrics service unavailable", headers={"Retry-After": "5"}) from exc
    if response.status_code >= 400:
        try:
            message = (response.json().get("error") or {}).get("message")
        except (ValueError, AttributeError):
            message = None
        status = response.status_code if response.status_code < 500 else 503
        raise ApiError(message or "query failed", status_code=status,
                       error_type="invalid_sql" if status == 400 else "service_unavailable")
    return response.json()


@router.get("/system/", summary="System-wide metrics (admins)")
async def system_metrics(request: Request, user: User, days: Days = 30, from_: From = None, to: To = None,
                         bucket: Bucket = "day") -> Any:
    if not user.is_admin:
        raise PermissionDenied("System metrics are for admins")
    return await _query(request, "/v1/metrics/system", _params(days, from_, to, bucket))
