"""`python -m bench.workers_compare`: one serving process vs `LATENTSERVE_WORKERS=2` (embedded
backend, the scaling scenario's model and output), on 64 concurrent clients and on one
sequential client, n=1 Sample each; writes bench/results/workers_compare.json.

Clients spread over 16 gRPC channels (one TCP connection each), since SO_REUSEPORT spreads
connections, not requests: one channel would reach one worker. The two set-ups are measured
alternately (`rounds` times) so both see the same background load.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.config import DEFAULT_OUT, RunConfig
from bench.load import LoadResult, closed_loop, interleaved
from bench.stack import Stack
from latentserve.client import AsyncClient

CHANNELS = 16
CLIENTS = 64
OUTPUT = "float32"


async def _measure(address: str, model: str, clients: int, channels: int,
                   seconds: float) -> LoadResult:
    pool = [AsyncClient(address, retries=0, timeout_s=60) for _ in range(channels)]
    try:
        async def one(i: int) -> int:
            return len(await pool[i % channels].sample(model, n=1, seed=i, output=OUTPUT))

        return await closed_loop(one, concurrency=clients, duration_s=seconds, warmup_s=0.5)
    finally:
        await asyncio.gather(*(c.close() for c in pool))


async def compare(stack: Stack, seconds: float, rounds: int) -> dict[str, Any]:
    """The measured points: {setup: {load: summary}}."""
    model = stack.model.name
    services = {f"workers={n}": stack.start_service(f"workers{n}",
                                                    stack.service_settings(WORKERS=str(n)))
                for n in (1, 2)}
    points: dict[str, Any] = {}
    for load, clients, channels in (("64 clients", CLIENTS, CHANNELS), ("sequential", 1, 1)):
        modes: dict[str, Callable[[], Awaitable[LoadResult]]] = {
            name: functools.partial(_measure, svc.address, model, clients, channels, seconds)
            for name, svc in services.items()}
        merged = await interleaved(modes, rounds)
        for name, result in merged.items():
            summary = result.summary()
            points.setdefault(name, {})[load] = {
                k: summary[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "requests",
                                        "failed")}
    return {"points": points, "model": stack.model.source,
            "settings": {"output": OUTPUT, "channels": CHANNELS, "seconds": seconds,
                         "rounds": rounds}}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers_compare")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "workers_compare.json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of both services, without the LATENTSERVE_ prefix")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    work = Path(tempfile.mkdtemp(prefix="latentserve-workers-"))
    try:
        with Stack(RunConfig(service_settings=extra, work_dir=work)) as stack:
            result = asyncio.run(compare(stack, args.seconds, args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["settings"]["service"] = extra
    result["load_average"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
