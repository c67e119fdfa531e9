"""Per-user request rate limit (token bucket) and concurrent-run limit.

In-process: with N gateway replicas behind a load balancer a user gets up to N times the
rate. That is the usual trade for a limiter with no network hop; a shared limiter (Redis)
is the next step when that matters.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Run
from gateway.errors import RateLimited


class TokenBucket:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, key: int) -> float:
        """Consume one token; returns 0, or the seconds until one is available."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def check(self, key: int) -> None:
        wait = self.take(key)
        if wait > 0:
            raise RateLimited(f"Rate limit exceeded: at most {self.capacity:g} requests per minute",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})


async def check_concurrent_runs(db: AsyncSession, user_id: int, limit: int) -> None:
    active = (await db.execute(select(func.count()).select_from(Run)
                               .where(Run.user_id == user_id, Run.status.in_(("queued", "running"))))).scalar_one()
    if active >= limit:
        raise RateLimited(f"Too many runs in progress ({active}); at most {limit} at once",
                          headers={"Retry-After": "1"})
