"""`latency`: p50/p90/p99 of each RPC, one client sending back to back, on both backends.

RPCs: Sample n=1/16/64, Interpolate 3 keyframes × 16 steps (31 frames), Edit 4 bases × 9
strengths, Encode 16 images. For each RPC the two backends are measured one after the other
with the same request budget, so their numbers are side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.config import RunConfig
from bench.load import Request, closed_loop
from bench.models import ChosenModel
from bench.processes import ServiceProcess
from bench.stack import Stack
from latentserve.client import AsyncClient

OUTPUT = "float32"
STRENGTHS = np.linspace(-2.0, 2.0, 9).tolist()
RPCS = ("sample_n1", "sample_n16", "sample_n64", "interpolate_3x16", "edit_4x9", "encode_16")


def requests_for(client: AsyncClient, chosen: ChosenModel, direction: str | None,
                 images: np.ndarray | None) -> dict[str, Request | None]:
    """Each RPC of the scenario as a request function (None where the model cannot do it);
    a conditional model gets labels per item (Sample, Encode), per path (Interpolate) and per
    base (Edit)."""
    model, labels = chosen.name, chosen.labels

    async def sample(n: int, i: int) -> int:
        return len(await client.sample(model, n=n, seed=i, output=OUTPUT,
                                       class_labels=labels(n, i)))

    async def interpolate(i: int) -> int:
        out = await client.interpolate(model, seeds=[i, i + 1, i + 2], steps=16, output=OUTPUT,
                                       class_labels=labels(1, i))
        return len(out)

    async def edit(i: int) -> int:
        assert direction is not None
        out = await client.edit(model, seeds=[i, i + 1, i + 2, i + 3], direction=direction,
                                strengths=STRENGTHS, output=OUTPUT, class_labels=labels(4, i))
        return len(out)

    async def encode(i: int) -> int:
        assert images is not None
        return len(await client.encode(model, images, class_labels=labels(len(images))))

    def sized(n: int) -> Request:
        return lambda i: sample(n, i)

    return {
        "sample_n1": sized(1),
        "sample_n16": sized(16),
        "sample_n64": sized(64),
        "interpolate_3x16": interpolate,
        "edit_4x9": edit if direction is not None else None,
        "encode_16": encode if images is not None else None,
    }


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    spec = stack.model.bundle.spec
    max_requests, seconds, warmup = cfg.pick(300, 8), cfg.pick(3.0, 0.5), cfg.pick(0.3, 0.05)
    direction = spec.directions[0].name if spec.directions else None
    backends: dict[str, Callable[[], ServiceProcess]] = {"embedded": stack.embedded,
                                                         "triton": stack.triton_service}
    out: dict[str, Any] = {rpc: {} for rpc in RPCS}
    errors: dict[str, str] = {}
    clients: dict[str, AsyncClient] = {}
    try:
        plans: dict[str, dict[str, Request | None]] = {}
        for backend, start in backends.items():
            try:
                svc = start()
            except Exception as exc:
                errors[backend] = f"{type(exc).__name__}: {exc}"[:2000]
                continue
            client = clients[backend] = AsyncClient(svc.address, retries=0, timeout_s=60)
            images = None
            if spec.encoder is not None:
                images = (await client.sample(stack.model.name, n=16, seed=0,
                                              class_labels=stack.model.labels(16))).images
            plans[backend] = requests_for(client, stack.model, direction, images)
        for rpc in RPCS:
            for backend, plan in plans.items():
                request = plan[rpc]
                if request is None:
                    out[rpc][backend] = None
                    continue
                res = await closed_loop(request, concurrency=1, duration_s=seconds,
                                        max_requests=max_requests, warmup_s=warmup)
                out[rpc][backend] = {k: v for k, v in res.summary().items()
                                     if k in ("p50_ms", "p90_ms", "p99_ms", "requests",
                                              "failed", "errors", "items_per_s")}
    finally:
        for client in clients.values():
            await client.close()
    out["settings"] = {"concurrency": 1, "output": OUTPUT, "max_requests": max_requests,
                       "max_seconds": seconds, "edit_direction": direction,
                       "interpolate": "3 seed keyframes, steps=16 (31 frames), slerp",
                       "edit": "4 seed bases × 9 strengths in [-2, 2]"}
    if errors:
        out["errors"] = errors
    return out
