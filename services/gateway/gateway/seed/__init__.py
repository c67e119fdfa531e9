"""Demo data for the embedded default (``GATEWAY_SEED_DEMO=true``): a demo user and an admin
with known API keys, and the agents of the definitions file. Idempotent: safe on every start."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.auth import hash_api_key
from gateway.db.models import Agent, ApiKey, User
from shared.catalogue import parse_model_spec, validate_tool_names

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@agentos.local"
ADMIN_EMAIL = "admin@agentos.local"


async def _ensure_user(db, email: str, name: str, is_admin: bool, key: str | None) -> User:
    user = (await db.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if user is None:
        user = User(email=email, name=name, is_admin=is_admin)
        db.add(user)
        await db.flush()
    if key:
        hashed = hash_api_key(key)
        if (await db.execute(select(ApiKey.id).where(ApiKey.key_hash == hashed))).first() is None:
            db.add(ApiKey(user_id=user.id, name="seeded", key_hash=hashed, prefix=key[:8]))
    return user


async def load_agents(db, path: Path) -> int:
    definitions = json.loads(path.read_text())["agents"]
    count = 0
    for d in definitions:
        parse_model_spec(d["model"])
        validate_tool_names(d.get("tools", []))
        if await db.get(Agent, d["id"]) is None:
            db.add(Agent(id=d["id"], name=d["name"], description=d.get("description", ""),
                         instructions=d.get("instructions", ""), model=d["model"], tools=d.get("tools", []),
                         capabilities=d.get("capabilities", []), options=d.get("options", {}),
                         visibility=d.get("visibility", "global")))
            count += 1
    return count


async def seed_demo(sessionmaker: async_sessionmaker, agents_file: Path, demo_key: str | None,
                    admin_key: str | None) -> None:
    async with sessionmaker() as db:
        await _ensure_user(db, DEMO_EMAIL, "Demo User", False, demo_key)
        await _ensure_user(db, ADMIN_EMAIL, "Admin", True, admin_key)
        added = await load_agents(db, agents_file)
        await db.commit()
    log.info("demo data ready (%d new agents from %s)", added, agents_file)
