"""Admin REST API (admin API keys only). The same operations exist as a CLI:
``python -m gateway admin --help``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from gateway.admin import (
    AdminService,
    AgentIn,
    AgentUpdate,
    ApiKeyIn,
    MembershipIn,
    SubscriptionIn,
    TeamIn,
    UserIn,
    WebhookSourceIn,
)
from gateway.auth import Principal
from gateway.db.models import AuditLog
from gateway.deps import Db, current_user
from gateway.errors import PermissionDenied, error_responses
from gateway.validation import MAX_INT

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429))

Id = Annotated[int, Path(ge=1, le=MAX_INT)]


async def require_admin(request: Request, db: Db, user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        db.add(AuditLog(actor_user_id=user.id, action="access.denied", target=request.url.path,
                        detail={"reason": "admin route"}))
        await db.commit()
        raise PermissionDenied("Admin API key required")
    return user


Admin = Annotated[Principal, Depends(require_admin)]


def service(request: Request, db: Db, admin: Admin) -> AdminService:
    return AdminService(db, admin.id, on_access_change=request.app.state.access_cache.invalidate)


Svc = Annotated[AdminService, Depends(service)]


@router.post("/users/", status_code=201)
async def create_user(body: UserIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_user(body)


@router.get("/users/")
async def list_users(svc: Svc) -> list[dict[str, Any]]:
    return await svc.list_users()


@router.post("/users/{user_id}/deactivate/")
async def deactivate_user(user_id: Id, svc: Svc) -> dict[str, Any]:
    return await svc.deactivate_user(user_id)


@router.post("/users/{user_id}/api-keys/", status_code=201, summary="Issue an API key (shown once)")
async def create_api_key(user_id: Id, body: ApiKeyIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_api_key(user_id, body)


@router.delete("/api-keys/{key_id}/", summary="Revoke an API key")
async def revoke_api_key(key_id: Id, svc: Svc) -> dict[str, Any]:
    return await svc.revoke_api_key(key_id)


@router.post("/teams/", status_code=201)
async def create_team(body: TeamIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_team(body)


@router.post("/teams/{team_id}/members/", status_code=201)
async def add_member(team_id: Id, body: MembershipIn, svc: Svc) -> dict[str, Any]:
    return await svc.add_member(team_id, body)


@router.delete("/teams/{team_id}/members/{user_id}/")
async def remove_member(team_id: Id, user_id: Id, svc: Svc) -> dict[str, Any]:
    return await svc.remove_member(team_id, user_id)


@router.post("/agents/", status_code=201, summary="Define an agent (tools and model are validated now)")
async def create_agent(body: AgentIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_agent(body)


@router.patch("/agents/{agent_id}/", summary="Change an agent (bumps its version)")
async def update_agent(agent_id: Annotated[str, Path(max_length=64)], body: AgentUpdate, svc: Svc) -> dict[str, Any]:
    return await svc.update_agent(agent_id, body)


@router.get("/agents/")
async def list_agents(svc: Svc) -> list[dict[str, Any]]:
    return await svc.list_agents()


@router.post("/subscriptions/", status_code=201)
async def create_subscription(body: SubscriptionIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_subscription(body)


@router.post("/subscriptions/{sub_id}/cancel/")
async def cancel_subscription(sub_id: Id, svc: Svc) -> dict[str, Any]:
    return await svc.set_subscription_status(sub_id, "cancelled")


@router.post("/webhook-sources/", status_code=201, summary="Register a webhook source (secret shown once)")
async def create_webhook_source(body: WebhookSourceIn, svc: Svc) -> dict[str, Any]:
    return await svc.create_webhook_source(body)


@router.get("/audit-log/")
async def audit_log(svc: Svc, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return await svc.audit_log(limit)
