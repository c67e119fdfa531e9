"""Per-partition offset bookkeeping for a consumer that finishes messages out of order.

Kafka commits are positions, not acknowledgements: committing offset N says "everything below
N is done". When messages finish out of order (run B of session 2 ends before run A of
session 1), the safe position for a partition is its lowest unfinished offset. A crash then
redelivers only messages at or above it — some already finished (consumers are idempotent),
none lost.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable


class OffsetTracker:
    def __init__(self) -> None:
        # Offsets of one partition arrive in increasing order, so an insertion-ordered dict's
        # first key is always the lowest unfinished offset: O(1) for every operation.
        self._pending: dict[Hashable, dict[int, None]] = {}
        self._next: dict[Hashable, int] = {}
        self._committed: dict[Hashable, int] = {}

    def started(self, partition: Hashable, offset: int) -> None:
        self._pending.setdefault(partition, {})[offset] = None
        self._next[partition] = max(self._next.get(partition, -1), offset + 1)

    def finished(self, partition: Hashable, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None:
            pending.pop(offset, None)

    def in_flight(self, partition: Hashable | None = None) -> int:
        if partition is not None:
            return len(self._pending.get(partition, ()))
        return sum(len(p) for p in self._pending.values())

    def committable(self, partition: Hashable) -> int | None:
        """The position to commit for ``partition`` (None = nothing seen yet)."""
        pending = self._pending.get(partition)
        if pending:
            return next(iter(pending))
        return self._next.get(partition)

    def to_commit(self) -> dict[Hashable, int]:
        """Positions that moved since they were last marked committed."""
        out = {}
        for partition in self._next:
            position = self.committable(partition)
            if position is not None and position > self._committed.get(partition, -1):
                out[partition] = position
        return out

    def mark_committed(self, positions: dict[Hashable, int]) -> None:
        for partition, position in positions.items():
            self._committed[partition] = max(self._committed.get(partition, -1), position)

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """After a partition is revoked its in-flight messages belong to the next owner."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._next.pop(partition, None)
            self._committed.pop(partition, None)

    def partitions(self) -> list[Hashable]:
        return list(self._next)
