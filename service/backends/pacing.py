"""When a batcher opens another in-flight slot: the busy hold and a backend's in-flight limit.

With several batches allowed in flight (Triton), dispatching every request the moment a slot
is free splits the arrivals of one backend round trip over all the slots: small batches, and a
backend that queues them again. `BusyHold` keeps the first slot immediate (a lone request on an
idle backend never waits) but, while a batch is already running, holds a small queue for up to
half a typical backend call (at most `max_hold_s`) so that it can fill; a queue of `fill_rows`
or more, or the end of a running call, dispatches at once. A backend can also narrow the slots
it gets (`InflightLimit`, e.g. Triton's queue statistics, `triton_inflight.InflightTuner`).
Example::

    hold = BusyHold(max_batch_size=64, max_hold_s=0.002)
    hold.observe(0.004)              # a backend call took 4 ms
    hold.hold_s()                    # → 0.002: a second slot waits ≤ 2 ms for rows to gather
"""

from __future__ import annotations

from collections.abc import Callable

InflightLimit = Callable[[], int]
"""A backend's current in-flight limit for one component (≥ 1; the batcher's own maximum
still applies)."""

EWMA_WEIGHT = 0.2
"""Weight of the newest call in the running mean of backend call durations."""


class BusyHold:
    """How long a batcher holds queued rows while one of its batches already runs."""

    __slots__ = ("call_s", "fill_rows", "max_hold_s")

    def __init__(self, *, max_batch_size: int, max_hold_s: float) -> None:
        self.max_hold_s = max_hold_s
        self.fill_rows = max(2, max_batch_size // 2)
        """Queued rows that make a batch worth a slot of its own at once."""
        self.call_s = 0.0
        """Running mean of backend call durations (0 until the first call ends)."""

    def observe(self, seconds: float) -> None:
        """Fold one backend call's duration into the running mean."""
        self.call_s = seconds if self.call_s == 0.0 else (
            (1.0 - EWMA_WEIGHT) * self.call_s + EWMA_WEIGHT * seconds)

    def hold_s(self) -> float:
        """The longest a queue head may wait for another slot: half a typical call, capped."""
        return min(self.max_hold_s, 0.5 * self.call_s)
