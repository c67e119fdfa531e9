"""``python -m gateway admin ...`` — bootstrap and operate without HTTP (same AdminService as
the admin REST API; prints JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

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
from gateway.db.engine import make_engine, make_sessionmaker, migrate
from gateway.settings import GatewaySettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway admin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-user"); p.add_argument("email"); p.add_argument("--name", default=""); p.add_argument("--admin", action="store_true")  # noqa: E702
    sub.add_parser("list-users")
    p = sub.add_parser("deactivate-user"); p.add_argument("user_id", type=int)  # noqa: E702
    p = sub.add_parser("create-api-key"); p.add_argument("user_id", type=int); p.add_argument("--name", default="")  # noqa: E702
    p = sub.add_parser("revoke-api-key"); p.add_argument("key_id", type=int)  # noqa: E702
    p = sub.add_parser("create-team"); p.add_argument("name")  # noqa: E702
    p = sub.add_parser("add-member"); p.add_argument("team_id", type=int); p.add_argument("user_id", type=int)  # noqa: E702
    p = sub.add_parser("create-agent", help="JSON definition, e.g. '{\"id\":\"x\",\"name\":\"X\",\"model\":\"scripted:assistant\"}'")
    p.add_argument("definition")
    p = sub.add_parser("update-agent"); p.add_argument("agent_id"); p.add_argument("changes", help="JSON object")  # noqa: E702
    sub.add_parser("list-agents")
    p = sub.add_parser("subscribe"); p.add_argument("user_id", type=int); p.add_argument("agent_id")  # noqa: E702
    p = sub.add_parser("cancel-subscription"); p.add_argument("subscription_id", type=int)  # noqa: E702
    p = sub.add_parser("create-webhook-source"); p.add_argument("source_id"); p.add_argument("user_id", type=int)  # noqa: E702
    p = sub.add_parser("audit-log"); p.add_argument("--limit", type=int, default=50)  # noqa: E702
    return parser


async def run(args: argparse.Namespace, settings: GatewaySettings) -> Any:
    url = settings.async_database_url()
    await migrate(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            svc = AdminService(db, actor_id=None)
            match args.command:
                case "create-user":
                    return await svc.create_user(UserIn(email=args.email, name=args.name, is_admin=args.admin))
                case "list-users":
                    return await svc.list_users()
                case "deactivate-user":
                    return await svc.deactivate_user(args.user_id)
                case "create-api-key":
                    return await svc.create_api_key(args.user_id, ApiKeyIn(name=args.name))
                case "revoke-api-key":
                    return await svc.revoke_api_key(args.key_id)
                case "create-team":
                    return await svc.create_team(TeamIn(name=args.name))
                case "add-member":
                    return await svc.add_member(args.team_id, MembershipIn(user_id=args.user_id))
                case "create-agent":
                    return await svc.create_agent(AgentIn.model_validate_json(args.definition))
                case "update-agent":
                    return await svc.update_agent(args.agent_id, AgentUpdate.model_validate_json(args.changes))
                case "list-agents":
                    return await svc.list_agents()
                case "subscribe":
                    return await svc.create_subscription(SubscriptionIn(user_id=args.user_id, agent_id=args.agent_id))
                case "cancel-subscription":
                    return await svc.set_subscription_status(args.subscription_id, "cancelled")
                case "create-webhook-source":
                    return await svc.create_webhook_source(WebhookSourceIn(id=args.source_id, user_id=args.user_id))
                case "audit-log":
                    return await svc.audit_log(args.limit)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    from pydantic import ValidationError

    from gateway.errors import ApiError

    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(run(args, GatewaySettings()))
    except (ApiError, ValidationError) as exc:
        print(json.dumps({"success": False, "error": str(exc)}))
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
