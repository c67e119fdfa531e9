"""Administration: users, API keys, teams, memberships, agents, subscriptions, webhook
sources. One service used by the admin REST API and the CLI; every action is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import generate_api_key, hash_api_key
from gateway.db.models import Agent, ApiKey, AuditLog, Subscription, Team, TeamMembership, User, WebhookSource
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.validation import MAX_INT, StrictBody
from gateway.webhooks import new_secret
from shared.catalogue import InvalidAgentDefinition, parse_model_spec, validate_tool_names

AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _check_model(v: str | None) -> str | None:
    if v is not None:
        try:
            parse_model_spec(v)
        except InvalidAgentDefinition as exc:
            raise ValueError(str(exc)) from exc
    return v


def _check_tools(v: list[str] | None) -> list[str] | None:
    # Unknown tools are rejected when the agent is defined, never at run time.
    if v is not None:
        try:
            validate_tool_names(v)
        except InvalidAgentDefinition as exc:
            raise ValueError(str(exc)) from exc
    return v


class _In(StrictBody):
    pass


class UserIn(_In):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field("", max_length=200)
    is_admin: bool = False


class ApiKeyIn(_In):
    name: str = Field("", max_length=200)


class TeamIn(_In):
    name: str = Field(min_length=1, max_length=200)


class MembershipIn(_In):
    user_id: int = Field(ge=1, le=MAX_INT)
    role: Literal["member", "owner"] = "member"


class AgentIn(_In):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    instructions: str = Field("", max_length=20_000)
    model: str = Field(min_length=3, max_length=200)
    tools: list[str] = Field(default_factory=list, max_length=20)
    capabilities: list[str] = Field(default_factory=list, max_length=20)
    options: dict[str, Any] = Field(default_factory=dict)
    visibility: Literal["global", "team", "subscription"] = "global"
    team_id: int | None = Field(None, ge=1, le=MAX_INT)
    is_active: bool = True

    _model = field_validator("model")(_check_model)
    _tools = field_validator("tools")(_check_tools)


class AgentUpdate(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    instructions: str | None = Field(None, max_length=20_000)
    model: str | None = Field(None, min_length=3, max_length=200)
    tools: list[str] | None = Field(None, max_length=20)
    capabilities: list[str] | None = Field(None, max_length=20)
    options: dict[str, Any] | None = None
    visibility: Literal["global", "team", "subscription"] | None = None
    team_id: int | None = Field(None, ge=1, le=MAX_INT)
    is_active: bool | None = None

    _model = field_validator("model")(_check_model)
    _tools = field_validator("tools")(_check_tools)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data):
        # Only team_id may be cleared; null for anything else is a mistake, not "unset".
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k != "team_id")
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: may not be null")
        return data


class SubscriptionIn(_In):
    user_id: int = Field(ge=1, le=MAX_INT)
    agent_id: str = Field(min_length=1, max_length=64)


class WebhookSourceIn(_In):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    user_id: int = Field(ge=1, le=MAX_INT, description="The user this source acts for.")


def user_out(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "is_admin": u.is_admin, "is_active": u.is_active,
            "created_at": u.created_at.isoformat() if u.created_at else None}


def agent_out(a: Agent) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "description": a.description, "instructions": a.instructions,
            "model": a.model, "tools": a.tools, "capabilities": a.capabilities, "options": a.options,
            "visibility": a.visibility, "team_id": a.team_id, "is_active": a.is_active, "version": a.version}


def subscription_out(s: Subscription) -> dict[str, Any]:
    return {"id": s.id, "user_id": s.user_id, "agent_id": s.agent_id, "status": s.status}


class AdminService:
    """Each method commits its own change and writes one audit row in the same transaction."""

    def __init__(self, db: AsyncSession, actor_id: int | None, on_access_change=None) -> None:
        self.db = db
        self.actor_id = actor_id
        self.on_access_change = on_access_change or (lambda: None)

    def _audit(self, action: str, target: str, **detail: Any) -> None:
        self.db.add(AuditLog(actor_user_id=self.actor_id, action=action, target=target, detail=detail))

    async def _commit(self, access_changed: bool = False) -> None:
        try:
            await self.db.commit()
        except IntegrityError as exc:
            await self.db.rollback()
            raise Conflict("Conflicts with an existing record") from exc
        if access_changed:
            self.on_access_change()

    async def _user(self, user_id: int) -> User:
        user = await self.db.get(User, user_id)
        if user is None:
            raise NotFound(f"User not found: {user_id}")
        return user

    # users and keys ----------------------------------------------------------------------
    async def create_user(self, body: UserIn) -> dict[str, Any]:
        if (await self.db.execute(select(User.id).where(User.email == body.email))).first():
            raise Conflict(f"A user with email {body.email} exists")
        user = User(email=body.email, name=body.name, is_admin=body.is_admin)
        self.db.add(user)
        await self.db.flush()
        self._audit("admin.user.create", f"user:{user.id}", email=body.email, is_admin=body.is_admin)
        await self._commit()
        return user_out(user)

    async def list_users(self) -> list[dict[str, Any]]:
        return [user_out(u) for u in (await self.db.execute(select(User).order_by(User.id))).scalars()]

    async def deactivate_user(self, user_id: int) -> dict[str, Any]:
        user = await self._user(user_id)
        user.is_active = False
        self._audit("admin.user.deactivate", f"user:{user_id}")
        await self._commit(access_changed=True)
        return user_out(user)

    async def create_api_key(self, user_id: int, body: ApiKeyIn) -> dict[str, Any]:
        await self._user(user_id)
        key = generate_api_key()
        record = ApiKey(user_id=user_id, name=body.name, key_hash=hash_api_key(key), prefix=key[:8])
        self.db.add(record)
        await self.db.flush()
        self._audit("admin.api_key.create", f"api_key:{record.id}", user_id=user_id)
        await self._commit()
        return {"id": record.id, "user_id": user_id, "name": body.name, "prefix": record.prefix, "api_key": key,
                "note": "Shown once: only a hash is stored."}

    async def revoke_api_key(self, key_id: int) -> dict[str, Any]:
        record = await self.db.get(ApiKey, key_id)
        if record is None:
            raise NotFound(f"API key not found: {key_id}")
        record.revoked_at = record.revoked_at or datetime.now(UTC)
        self._audit("admin.api_key.revoke", f"api_key:{key_id}")
        await self._commit(access_changed=True)
        return {"id": record.id, "revoked": True}

    # teams --------------------------------------------------------------------------------
    async def create_team(self, body: TeamIn) -> dict[str, Any]:
        team = Team(name=body.name)
        self.db.add(team)
        try:
            await self.db.flush()
        except IntegrityError as exc:
            await self.db.rollback()
            raise Conflict(f"A team named {body.name!r} exists") from exc
        self._audit("admin.team.create", f"team:{team.id}", name=body.name)
        await self._commit()
        return {"id": team.id, "name": team.name}

    async def add_member(self, team_id: int, body: MembershipIn) -> dict[str, Any]:
        if await self.db.get(Team, team_id) is None:
            raise NotFound(f"Team not found: {team_id}")
        await self._user(body.user_id)
        if await self.db.get(TeamMembership, (team_id, body.user_id)) is None:
            self.db.add(TeamMembership(team_id=team_id, user_id=body.user_id, role=body.role))
        self._audit("admin.team.add_member", f"team:{team_id}", user_id=body.user_id)
        await self._commit(access_changed=True)
        return {"team_id": team_id, "user_id": body.user_id, "role": body.role}

    async def remove_member(self, team_id: int, user_id: int) -> dict[str, Any]:
        membership = await self.db.get(TeamMembership, (team_id, user_id))
        if membership is None:
            raise NotFound("Membership not found")
        await self.db.delete(membership)
        self._audit("admin.team.remove_member", f"team:{team_id}", user_id=user_id)
        await self._commit(access_changed=True)
        return {"team_id": team_id, "user_id": user_id, "removed": True}

    # agents -------------------------------------------------------------------------------
    async def _check_team(self, visibility: str, team_id: int | None) -> None:
        if visibility == "team" and team_id is None:
            raise ValidationFailed("team_id: required when visibility is 'team'")
        if team_id is not None and await self.db.get(Team, team_id) is None:
            raise NotFound(f"Team not found: {team_id}")

    async def create_agent(self, body: AgentIn) -> dict[str, Any]:
        if await self.db.get(Agent, body.id) is not None:
            raise Conflict(f"Agent {body.id} exists; update it instead")
        await self._check_team(body.visibility, body.team_id)
        agent = Agent(**body.model_dump(), version=1)
        self.db.add(agent)
        self._audit("admin.agent.create", f"agent:{body.id}", model=body.model)
        await self._commit(access_changed=True)
        return agent_out(agent)

    async def update_agent(self, agent_id: str, body: AgentUpdate) -> dict[str, Any]:
        agent = await self.db.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"Agent not found: {agent_id}")
        changes = body.model_dump(exclude_unset=True)
        await self._check_team(changes.get("visibility", agent.visibility), changes.get("team_id", agent.team_id))
        for key, value in changes.items():
            setattr(agent, key, value)
        if changes:
            agent.version += 1  # runs record the version they used
        self._audit("admin.agent.update", f"agent:{agent_id}", fields=sorted(changes), version=agent.version)
        await self._commit(access_changed=True)
        return agent_out(agent)

    async def list_agents(self) -> list[dict[str, Any]]:
        return [agent_out(a) for a in (await self.db.execute(select(Agent).order_by(Agent.id))).scalars()]

    # subscriptions ------------------------------------------------------------------------
    async def create_subscription(self, body: SubscriptionIn) -> dict[str, Any]:
        await self._user(body.user_id)
        if await self.db.get(Agent, body.agent_id) is None:
            raise NotFound(f"Agent not found: {body.agent_id}")
        sub = Subscription(user_id=body.user_id, agent_id=body.agent_id, status="active")
        self.db.add(sub)
        await self.db.flush()
        self._audit("admin.subscription.create", f"subscription:{sub.id}", user_id=body.user_id, agent_id=body.agent_id)
        await self._commit(access_changed=True)
        return subscription_out(sub)

    async def set_subscription_status(self, sub_id: int, status: str) -> dict[str, Any]:
        sub = await self.db.get(Subscription, sub_id)
        if sub is None:
            raise NotFound(f"Subscription not found: {sub_id}")
        sub.status = status
        self._audit(f"admin.subscription.{status}", f"subscription:{sub_id}")
        await self._commit(access_changed=True)
        return subscription_out(sub)

    # webhook sources ----------------------------------------------------------------------
    async def create_webhook_source(self, body: WebhookSourceIn) -> dict[str, Any]:
        await self._user(body.user_id)
        if await self.db.get(WebhookSource, body.id) is not None:
            raise Conflict(f"Webhook source {body.id} exists")
        secret = new_secret()
        self.db.add(WebhookSource(id=body.id, secret=secret, user_id=body.user_id))
        self._audit("admin.webhook_source.create", f"webhook_source:{body.id}", user_id=body.user_id)
        await self._commit()
        return {"id": body.id, "user_id": body.user_id, "secret": secret, "note": "Shown once."}

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = (await self.db.execute(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))).scalars()
        return [{"id": r.id, "at": r.at.isoformat() if r.at else None, "actor_user_id": r.actor_user_id,
                 "action": r.action, "target": r.target, "detail": r.detail} for r in rows]
