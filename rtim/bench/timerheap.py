"""The event-time timers of an in-process replay (the bench's breakdown and replay digest).

The worker keeps a heap of (due, customer) per partition and fires a customer's timers once the
event-time clock reaches them; an in-process replay of one stream does the same with this.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from rtim.core.profile import Profile

__all__ = ["ReplayTimers"]


class ReplayTimers:
    """Every timer a step set, by due time."""

    def __init__(self) -> None:
        self._due: list[tuple[int, str]] = []  # (due, customer)

    def note(self, customer_id: str, before: Profile | None, after: Profile) -> None:
        """Remember the timers ``after`` has that ``before`` (the customer's previous profile,
        None for a new one) did not."""
        known = {t[0] for t in before.get("timers", ())} if before is not None else set()
        for timer in after.get("timers", ()):
            if timer[0] not in known:
                heapq.heappush(self._due, (timer[0], customer_id))

    def due_by(self, ts: int) -> Iterator[str]:
        """The customers whose timers are due at or before ``ts``, earliest first (each taken
        once per timer noted)."""
        due = self._due
        while due and due[0][0] <= ts:
            yield heapq.heappop(due)[1]
