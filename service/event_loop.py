"""The server process's asyncio event loop, as `LATENTSERVE_EVENT_LOOP` chooses it.

`uvloop` (libuv) spends less CPU per RPC than the standard loop (bench/ANALYSIS.md, "Event
loop"); `auto` takes it when the package is installed (the `[server]` extra installs it).
Example::

    run(serve(settings), settings.event_loop)     # what `latentserve serve` does
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
EventLoop = Literal["auto", "asyncio", "uvloop"]


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop function for `choice` (None: asyncio's default loop).

    `uvloop` when uvloop is missing raises ImportError; `auto` falls back to asyncio."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """Run `main` to completion on a new loop of the chosen kind (like `asyncio.run`)."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
