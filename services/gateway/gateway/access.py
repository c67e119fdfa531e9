"""The seed's access rule, in one place:

    a user may see and use an agent if it is global, or the user is a member of its team,
    or the user has an active subscription to it.

(``Q(is_global=True) | Q(team__members__user=user) | Q(subscriptions__customer__user=user,
subscriptions__status="active")`` in the original.) Everything that lists, reads or runs
agents goes through ``usable_agent_ids`` / ``get_usable_agent``; an agent the user may not use
is indistinguishable from one that does not exist (404), and the denial is audited.

Caching (seed: "User permissions caching", "Agent list caching"): the set of agent ids a user
may use is cached per user for ``ttl_s``. Any change to agents, memberships, subscriptions,
users or keys made through this process clears the cache at once; other gateway replicas see
the change within ``ttl_s`` (``GATEWAY_ACCESS_CACHE_TTL_S``).
"""

from __future__ import annotations

import time

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import AUTH_CACHE, Principal
from gateway.db.models import Agent, AuditLog, ChatSession, Subscription, TeamMembership
from gateway.errors import NotFound


class AccessCache:
    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[int, tuple[float, int, frozenset[str]]] = {}
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._entries.clear()
        AUTH_CACHE.clear()  # a revoked key or deactivated user must stop working at once

    def get(self, user_id: int) -> frozenset[str] | None:
        entry = self._entries.get(user_id)
        if entry is None or entry[1] != self._generation or time.monotonic() - entry[0] > self.ttl_s:
            self.misses += 1
            return None
        self.hits += 1
        return entry[2]

    def put(self, user_id: int, generation: int, ids: frozenset[str]) -> None:
        # Only store if nothing was invalidated while the query ran.
        if generation == self._generation:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[user_id] = (time.monotonic(), generation, ids)

    @property
    def generation(self) -> int:
        return self._generation


ACCESS_CACHE = AccessCache()


def usable_agents_query(user: Principal):
    member_of = select(TeamMembership.team_id).where(TeamMembership.user_id == user.id)
    subscribed = select(Subscription.agent_id).where(Subscription.user_id == user.id, Subscription.status == "active")
    return select(Agent.id).where(
        Agent.is_active.is_(True),
        or_(
            Agent.visibility == "global",
            and_(Agent.team_id.is_not(None), Agent.team_id.in_(member_of)),
            Agent.id.in_(subscribed),
        ),
    )


async def usable_agent_ids(db: AsyncSession, user: Principal) -> frozenset[str]:
    cached = ACCESS_CACHE.get(user.id)
    if cached is not None:
        return cached
    generation = ACCESS_CACHE.generation
    ids = frozenset((await db.execute(usable_agents_query(user))).scalars())
    ACCESS_CACHE.put(user.id, generation, ids)
    return ids


async def list_usable_agents(db: AsyncSession, user: Principal) -> list[Agent]:
    ids = await usable_agent_ids(db, user)
    if not ids:
        return []
    return list((await db.execute(select(Agent).where(Agent.id.in_(ids)).order_by(Agent.name))).scalars())


async def audit_denial(db: AsyncSession, user: Principal, target: str, reason: str) -> None:
    db.add(AuditLog(actor_user_id=user.id, action="access.denied", target=target, detail={"reason": reason}))
    await db.commit()


async def get_usable_agent(db: AsyncSession, user: Principal, agent_id: str) -> Agent:
    if agent_id in await usable_agent_ids(db, user):
        agent = await db.get(Agent, agent_id)
        if agent is not None and agent.is_active:
            return agent
    await audit_denial(db, user, f"agent:{agent_id[:64]}", "agent not usable or missing")
    raise NotFound(f"Agent not found: {agent_id}")


async def get_owned_session(db: AsyncSession, user: Principal, session_id: str) -> ChatSession:
    session = await db.get(ChatSession, session_id)
    if session is None or session.user_id != user.id or session.deleted_at is not None:
        await audit_denial(db, user, f"session:{session_id[:64]}", "session not owned or missing")
        raise NotFound(f"Session not found: {session_id}")
    return session
