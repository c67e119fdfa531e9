"""API-key authentication: ``Authorization: Bearer <key>``.

Keys are 256-bit random tokens, so a plain SHA-256 is the right hash (a slow password hash
buys nothing against brute force here and would cost every request). Only the hash is stored;
the key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import time
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


class AuthCache:
    """Key hash -> principal for ``ttl_s``: saves a database round trip on every request.
    Revoking a key or deactivating a user clears it in this process at once; other gateway
    replicas honour the change within ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() > entry[0]:
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        self._entries.clear()


AUTH_CACHE = AuthCache()


async def authenticate(db: AsyncSession, token: str) -> Principal:
    key_hash = hash_api_key(token)
    cached = AUTH_CACHE.get(key_hash)
    if cached is not None:
        return cached
    row = (
        await db.execute(
            select(User.id, User.email, User.is_admin)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None), User.is_active.is_(True))
        )
    ).first()
    if row is None:
        raise AuthenticationError("Invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(id=row.id, email=row.email, is_admin=row.is_admin)
    AUTH_CACHE.put(key_hash, principal)
    return principal
