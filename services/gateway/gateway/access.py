"""The seed's access rule, in one place:

    a user may see and use an agent if it is global, or the user is a member of its team,
    or the user has an active subscription to it.

(``Q(is_global=True) | Q(team__members__user=user) | Q(subscriptions__customer__user=user,
subscriptions__status="active")`` in the original.) Everything that lists, reads or runs
agents goes through ``usable_agents`` / ``get_usable_agent``; an agent the user may not use is
indistinguishable from one that does not exist (404).
"""

from __future__ import annotations

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.db.models import Agent, ChatSession, Subscription, TeamMembership
from gateway.errors import NotFound


def usable_agents(user: Principal) -> Select:
    member_of = select(TeamMembership.team_id).where(TeamMembership.user_id == user.id)
    subscribed = select(Subscription.agent_id).where(Subscription.user_id == user.id, Subscription.status == "active")
    return select(Agent).where(
        Agent.is_active.is_(True),
        or_(
            Agent.visibility == "global",
            and_(Agent.team_id.is_not(None), Agent.team_id.in_(member_of)),
            Agent.id.in_(subscribed),
        ),
    )


async def get_usable_agent(db: AsyncSession, user: Principal, agent_id: str) -> Agent:
    agent = (await db.execute(usable_agents(user).where(Agent.id == agent_id))).scalar_one_or_none()
    if agent is None:
        raise NotFound(f"Agent not found: {agent_id}")
    return agent


async def get_owned_session(db: AsyncSession, user: Principal, session_id: str) -> ChatSession:
    session = await db.get(ChatSession, session_id)
    if session is None or session.user_id != user.id or session.deleted_at is not None:
        raise NotFound(f"Session not found: {session_id}")
    return session
