"""FastAPI dependencies: the database session and the authenticated user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal, authenticate, bearer_token


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


Db = Annotated[AsyncSession, Depends(get_db)]


# Declares the scheme in OpenAPI; the check itself (and its error envelope) is ours.
_bearer = HTTPBearer(auto_error=False, description="An AgentOS API key: `Authorization: Bearer aos_...`")


async def current_user(request: Request, db: Db,
                       _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> Principal:
    token = bearer_token(request)
    user = await authenticate(db, token)
    request.state.user = user
    request.app.state.rate_limiter.check(user.id)
    return user


User = Annotated[Principal, Depends(current_user)]
