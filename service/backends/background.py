"""The background lane of the batchers: work submitted inside `background()` (a projection's
search populations) waits in its own lane and gets a capped share of each batch
(`background_cap`), so interactive requests are never starved by it (see `batching`).
Example::

    with background():
        images = await backend.decode(z[:background_cap(spec.max_batch_size)])
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

BACKGROUND_SHARE = 0.25
"""The part of a batch that background rows may fill (see `background_cap`)."""

_background: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "latentserve_background_lane", default=False)


def background_cap(max_batch_size: int) -> int:
    """The most background rows one batch of `max_batch_size` takes (≥ 1); background callers
    submit chunks of at most this many rows."""
    return max(1, int(max_batch_size * BACKGROUND_SHARE))


@contextlib.contextmanager
def background() -> Iterator[None]:
    """Backend calls inside the block go to the batchers' background lane (fair share).

    Example::

        with background():
            images = await backend.decode(z[:background_cap(spec.max_batch_size)])
    """
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


def in_background() -> bool:
    """Whether the calling code runs inside `background()`."""
    return _background.get()
