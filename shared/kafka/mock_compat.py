"""Development-broker compatibility: let several members share one consumer group on
librdkafka's mock cluster.

The mock answers a follower's SyncGroup that arrives after the leader's with
INVALID_REQUEST, so a second runner (or metrics) replica cannot join a live group. Delaying the
leader's SyncGroup by ~0.2 s when the group has more than one member lets the followers' arrive
first (platform-notes: "A second member joining a group fails"). Real Kafka does not need this;
it is applied only when ``AGENTOS_DEVBROKER_COMPAT=1`` (set by ``shared.devstack`` when it runs
the development broker).
"""

from __future__ import annotations

import asyncio
import os

_applied = False


def apply_if_enabled() -> bool:
    global _applied
    if _applied or os.environ.get("AGENTOS_DEVBROKER_COMPAT") != "1":
        return _applied
    from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance

    original = CoordinatorGroupRebalance._on_join_leader

    async def delayed_leader_sync(self, response):
        if len(getattr(response, "members", ()) or ()) > 1:
            await asyncio.sleep(0.2)
        return await original(self, response)

    CoordinatorGroupRebalance._on_join_leader = delayed_leader_sync
    _applied = True
    return True
