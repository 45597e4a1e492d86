"""`hot_swap`: alias moves under steady load — two promotions and one rollback, zero failures?

A service of its own follows `production` in a registry holding versions 1, 2, 3 (polling every
second). Clients loop Sample / Interpolate / Edit; meanwhile the alias moves 1 → 2 (promote),
2 → 3 (promote), 3 → 2 (rollback). `switch_s` is the time from an alias move (committed in the
registry) to the first response served by the new version: poll wait + load + warm-up.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from bench.config import RunConfig
from bench.load import MAX_ERRORS_KEPT, rounded
from bench.models import PRODUCTION, ChosenModel, choose_bundle
from bench.stack import Stack
from latentserve.client import AsyncClient, GenerateResult
from latentserve.registry.store.mlflow_store import RegistryClient

MOVES = (("promote", 2), ("promote", 3), ("rollback", 2))
BIN_S = 0.5


class SwapLoad:
    """Workers looping mixed RPCs; records (time, version) of every response and failures."""

    def __init__(self, client: AsyncClient, chosen: ChosenModel, direction: str | None) -> None:
        self.client = client
        self.model = chosen.name
        self.labels = chosen.labels
        self.direction = direction
        self.t0 = time.monotonic()
        self.seen: list[tuple[float, int]] = []
        self.failed: list[float] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def _one(self, k: int, i: int) -> GenerateResult:
        kind = (k + i) % 3
        if kind == 1:
            return await self.client.interpolate(self.model, seeds=[i, i + 1], steps=6,
                                                 class_labels=self.labels(1, i))
        if kind == 2 and self.direction is not None:
            return await self.client.edit(self.model, seeds=[i], direction=self.direction,
                                          strengths=[-1.0, 0.0, 1.0],
                                          class_labels=self.labels(1, i))
        return await self.client.sample(self.model, n=4, seed=i, class_labels=self.labels(4, i))

    async def worker(self, k: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                out = await self._one(k, i)
            except Exception as exc:
                self.failed.append(time.monotonic() - self.t0)
                if len(self.errors) < MAX_ERRORS_KEPT:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            self.seen.append((time.monotonic() - self.t0, out.model.version))

    def first_after(self, t: float, version: int) -> float | None:
        times = [s for s, v in self.seen if s >= t and v == version]
        return min(times) - t if times else None

    def last_after(self, t: float, version: int, until: float) -> float | None:
        times = [s for s, v in self.seen if t <= s < until and v == version]
        return max(times) - t if times else None

    def timeline(self) -> list[dict[str, Any]]:
        """Responses per BIN_S bin: ok count per version and failures."""
        end = max([s for s, _ in self.seen] + self.failed + [0.0])
        bins: list[dict[str, Any]] = []
        for b in range(int(end / BIN_S) + 1):
            lo, hi = b * BIN_S, (b + 1) * BIN_S
            versions = Counter(v for s, v in self.seen if lo <= s < hi)
            bins.append({"t": round(lo, 2), "versions": {str(v): c for v, c in
                                                         sorted(versions.items())},
                         "failed": sum(1 for s in self.failed if lo <= s < hi)})
        return bins


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    gap_s, poll_s, workers = cfg.pick(9.0, 1.5), cfg.pick(1.0, 0.5), cfg.pick(16, 4)
    chosen = [choose_bundle(cfg, seed=v) for v in (1, 2, 3)]
    name = chosen[0].name
    uri = await asyncio.to_thread(stack.registries.create, "hot-swap",
                                  {name: [c.bundle.root for c in chosen]})
    svc = stack.start_service("hot-swap", {
        "REGISTRY_URI": uri, "DEFAULT_MODEL": name, "CACHE_DIR": str(cfg.work_dir / "cache-hs"),
        "REGISTRY_POLL_S": str(poll_s), "MAX_LOADED_VERSIONS": "2"})
    spec = chosen[0].bundle.spec
    direction = spec.directions[0].name if spec.directions else None
    registry = RegistryClient(uri)
    moves: list[dict[str, Any]] = []
    async with AsyncClient(svc.address, retries=0, timeout_s=30) as client:
        load = SwapLoad(client, chosen[0], direction)
        tasks = [asyncio.ensure_future(load.worker(k)) for k in range(workers)]
        try:
            old = 1
            for kind, version in MOVES:
                await asyncio.sleep(gap_s * (0.7 if not moves else 1.0))
                await asyncio.to_thread(registry.set_alias, name, PRODUCTION, version)
                moves.append({"kind": kind, "from": old, "to": version,
                              "at_s": round(time.monotonic() - load.t0, 3)})
                old = version
            await asyncio.sleep(gap_s)
        finally:
            load.stop.set()
            await asyncio.gather(*tasks)
    svc.stop()  # this service is only for this scenario
    ends = [m["at_s"] for m in moves[1:]] + [float("inf")]
    for move, until in zip(moves, ends, strict=True):
        move["switch_s"] = rounded(load.first_after(move["at_s"], move["to"]))
        move["old_served_until_s"] = rounded(load.last_after(move["at_s"], move["from"], until))
    switches = [m["switch_s"] for m in moves]
    duration = max([s for s, _ in load.seen] + [0.0])
    return {
        "requests": len(load.seen) + len(load.failed),
        "failed": len(load.failed),
        "switch_s": max(switches) if switches and None not in switches else None,
        "switch_s_each": switches,
        "duration_s": round(duration, 2),
        "moves": moves,
        "errors": load.errors,
        "all_switched": None not in switches,
        "timeline": load.timeline(),
        "targets": {"failed": 0},
        "model": {"name": name, "source": chosen[0].source},
        "settings": {"workers": workers, "registry_poll_s": poll_s, "gap_s": gap_s,
                     "versions": len(chosen), "max_loaded_versions": 2,
                     "rpcs": "Sample n=4 / Interpolate 2 seeds × 6 steps / Edit 1 × 3"},
    }
