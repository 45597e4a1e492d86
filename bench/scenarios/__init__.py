"""The benchmark scenarios by name, in the order a full run executes them.

Each scenario is a module `bench.scenarios.<name>` with `async def run(stack, cfg) -> dict`
returning its JSON section (`results[<name>]`); modules are imported only when run, so a
one-scenario run does not load what the others need (tritonclient, …). Example::

    section = await load_scenario("payload")(stack, cfg)
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from bench.config import RunConfig

if TYPE_CHECKING:
    from bench.stack import Stack

Scenario = Callable[["Stack", RunConfig], Awaitable[dict[str, Any]]]

SCENARIOS: tuple[str, ...] = ("batching", "triton", "latency", "scaling", "payload", "hot_swap",
                              "cache", "workers", "peers", "transport", "http", "realistic")


def load_scenario(name: str) -> Scenario:
    """The `run` function of scenario `name` (ValueError for an unknown name)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    module = importlib.import_module(f"bench.scenarios.{name}")
    return cast(Scenario, module.run)
