"""API-key authentication: ``Authorization: Bearer <key>``.

Keys are 256-bit random tokens, so a plain SHA-256 is the right hash (a slow password hash
buys nothing against brute force here and would cost every request). Only the hash is stored;
the key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ApiKey, User
from gateway.errors import AuthenticationError

KEY_PREFIX = "aos_"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    id: int
    email: str
    is_admin: bool


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authentication required: send 'Authorization: Bearer <api key>'",
                                  headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def authenticate(db: AsyncSession, token: str) -> Principal:
    row = (
        await db.execute(
            select(User.id, User.email, User.is_admin)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == hash_api_key(token), ApiKey.revoked_at.is_(None), User.is_active.is_(True))
        )
    ).first()
    if row is None:
        raise AuthenticationError("Invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return Principal(id=row.id, email=row.email, is_admin=row.is_admin)
