"""The current request's deadline, carried in a ContextVar from the RPC wrapper to the backends.

Example::

    with request_deadline(2.0):
        left = remaining_deadline_s()   # ≈ 2.0, shrinking
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("latentserve_request_deadline", default=None)


@contextlib.contextmanager
def request_deadline(timeout_s: float | None) -> Iterator[None]:
    """Backend calls inside the block must finish within `timeout_s` from now (None: default).

    The servicer sets it per RPC; remote backends pass what is left on to their server.
    Example::

        with request_deadline(context.time_remaining()):
            images = await backend.decode(z)
    """
    token = _deadline.set(None if timeout_s is None else time.monotonic() + timeout_s)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def request_deadline_at(deadline: float | None) -> Iterator[None]:
    """Like `request_deadline`, with an absolute `time.monotonic()` deadline (None: default).

    The batcher runs a combined backend call under the latest deadline of its requests."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline_at() -> float | None:
    """The current request's absolute deadline in `time.monotonic()` seconds (None: none)."""
    return _deadline.get()


def remaining_deadline_s() -> float | None:
    """Seconds left of the current request's deadline (None: no deadline set)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
