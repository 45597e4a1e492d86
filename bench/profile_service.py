"""A py-spy profile of one service process under one load, with its CPU per request.

Starts the embedded service on the chosen model (as `python -m bench --model M` serves it)
under py-spy, which samples it from start-up to exit (start-up and a 2 s warm-up are in the
profile too, a small share of a 40 s load), while a closed loop sends Sample requests. The
summary lands in `<out>/profiles/service-embedded.txt`; its first line, also printed, gives
the load's p50 and the service's CPU per request over the measured window (from /proc, not
from the samples: py-spy's idle detection counts part of a native event loop's waiting as
busy). Example::

    python -m bench.profile_service --model realistic --clients 1 --n 1 --seconds 40 \\
        --out /tmp/profile-realistic
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.config import RunConfig
from bench.load import closed_loop
from bench.probes import cpu_seconds
from bench.stack import Stack
from latentserve.client import AsyncClient


async def _drive(stack: Stack, *, clients: int, n: int, seconds: float) -> str:
    svc = stack.embedded()
    model = stack.model
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

        async def sample(i: int) -> int:
            return len(await client.sample(model.name, n=n, seed=i, output="float32",
                                           class_labels=model.labels(n, i)))  # fmt: skip

        await closed_loop(sample, concurrency=clients, duration_s=2.0)
        assert svc.pid is not None
        before = cpu_seconds(svc.pid)
        result = await closed_loop(sample, concurrency=clients, duration_s=seconds)
        used = cpu_seconds(svc.pid) - before
    if result.requests == 0:
        raise SystemExit(f"no request succeeded: {result.errors[:3]}")
    return (f"{model.name}: {clients} client(s) × Sample n={n} float32 for {seconds:g} s: "
            f"{result.requests} requests, {result.failed} failed, p50 {result.p(0.5):.2f} ms; "
            f"service CPU {1000 * used / result.requests:.2f} ms per request (/proc)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["auto", "zoo", "tiny", "realistic"], default="auto")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-service-") as work:
        cfg = RunConfig(model=args.model, profile=True, out_dir=args.out, work_dir=Path(work))
        with Stack(cfg) as stack:
            line = asyncio.run(_drive(stack, clients=args.clients, n=args.n,
                                      seconds=args.seconds))  # fmt: skip
    summary = cfg.profile_dir / "service-embedded.txt"
    summary.write_text(line + "\n\n" + summary.read_text())
    print(line)


if __name__ == "__main__":
    main()
