"""`scaling`: throughput of the embedded service vs concurrency (n=1 per request) and vs
request size (one client), as one list of points for the plot."""

from __future__ import annotations

from typing import Any

from bench.config import RunConfig
from bench.load import closed_loop
from bench.stack import Stack
from latentserve.client import AsyncClient

OUTPUT = "float32"
CONCURRENCY = (1, 4, 16, 64, 128)
SIZES = (1, 4, 16, 64, 256)


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    svc = stack.embedded()
    model = stack.model.name
    seconds, warmup = cfg.pick(3.0, 0.25), cfg.pick(0.3, 0.05)
    points: list[dict[str, Any]] = []
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

        async def measure(axis: str, concurrency: int, n: int) -> None:
            async def one(i: int) -> int:
                return len(await client.sample(model, n=n, seed=i, output=OUTPUT,
                                               class_labels=stack.model.labels(n, i)))

            res = await closed_loop(one, concurrency=concurrency, duration_s=seconds,
                                    warmup_s=warmup)
            summary = res.summary()
            points.append({"axis": axis, "concurrency": concurrency, "n": n,
                           **{k: summary[k] for k in ("items_per_s", "requests_per_s",
                                                      "p50_ms", "p99_ms", "requests",
                                                      "failed")}})

        for c in CONCURRENCY:
            await measure("concurrency", c, 1)
        for n in SIZES:
            await measure("size", 1, n)
    return {"curve": points,
            "settings": {"output": OUTPUT, "seconds_per_point": seconds, "warmup_s": warmup,
                         "concurrency_axis": "n=1 per request", "size_axis": "one client"}}
