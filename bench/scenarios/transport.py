"""`transport`: what a bare gRPC Python server costs per request here — the floor under the
service's own per-request CPU.

Bare servers (`bench/transport_server.py`: one method answering fixed bytes, no protobuf, no
handler work) run as separate processes in four setups — grpc.aio on asyncio, grpc.aio on
uvloop, grpc's thread-pool (sync) server, and that server handing each call to a coroutine on
one event-loop thread (`sync-loop`: the service's handlers on the thread-pool server) — and
get the `batching` scenario's small-request loads from the harness (64 concurrent clients, and
one client back to back), interleaved round by round. For each: requests/s, p50, and the
server process's CPU ms per request (`/proc`). The reply is 16 KiB, the size of one 64×64
float32 image. `floor_cpu_ms_per_request` is the lowest 64-client CPU per request: the part of
`batching.service_cpu_ms_per_request` no handler change can remove on this stack.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from bench.config import RunConfig
from bench.load import LoadResult, closed_loop, interleaved, rounded
from bench.probes import cpu_seconds
from bench.stack import Stack
from bench.transport_server import METHOD
from latentserve.service.devtools.processes import ChildProcess, free_port

VARIANTS = ("aio", "aio-uvloop", "sync", "sync-loop")
REPLY_BYTES = 16384
CONCURRENCY = 64
REQUEST = bytes(64)
READY_TIMEOUT_S = 60.0


class _BareServer:
    """One `bench.transport_server` process on a free port."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.port = free_port()
        root = Path(__file__).resolve().parents[2]
        self.process = ChildProcess(f"transport server {variant}").start(
            [sys.executable, "-m", "bench.transport_server", "--variant", variant,
             "--port", str(self.port), "--reply-bytes", str(REPLY_BYTES)],
            cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int:
        assert self.process.pid is not None  # started in __init__
        return self.process.pid

    def wait_ready(self) -> None:
        """Until the server prints `ready` (it does once it listens)."""
        self.process.wait_for_line(lambda line: line.strip() == "ready" or None, READY_TIMEOUT_S)

    def stop(self) -> None:
        self.process.stop(timeout_s=10)


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.3, 0.05), cfg.pick(3, 1)
    servers = [_BareServer(v) for v in VARIANTS]
    try:
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
        channels = {s.variant: grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers}
        cpu: dict[str, float] = dict.fromkeys(VARIANTS, 0.0)
        pids = {s.variant: s.pid for s in servers}

        def mode(variant: str, concurrency: int) -> Any:
            call = channels[variant].unary_unary(METHOD)

            async def one(_: int) -> int:
                await call(REQUEST)
                return 1

            async def measure() -> LoadResult:
                before = cpu_seconds(pids[variant])
                result = await closed_loop(one, concurrency=concurrency, duration_s=seconds,
                                           warmup_s=warmup)
                if concurrency == CONCURRENCY:
                    cpu[variant] += cpu_seconds(pids[variant]) - before
                return result

            return measure

        modes = {f"{v} {c}": mode(v, c) for v in VARIANTS for c in (CONCURRENCY, 1)}
        results = await interleaved(modes, rounds)
        for channel in channels.values():
            await channel.close()
    finally:
        for server in servers:
            server.stop()
    variants: dict[str, Any] = {}
    for v in VARIANTS:
        many, one = results[f"{v} {CONCURRENCY}"], results[f"{v} 1"]
        # warm-up requests are not counted but their CPU is: scale by the measured share
        share = seconds / (seconds + warmup)
        per_request = (cpu[v] * share * 1000.0 / many.requests) if many.requests else None
        variants[v] = {
            "concurrent_rps": round(many.requests_per_s, 1),
            "sequential_rps": round(one.requests_per_s, 1),
            "sequential_p50_ms": rounded(one.p(50)),
            "cpu_ms_per_request": rounded(per_request),
        }
    floors = [x["cpu_ms_per_request"] for x in variants.values()
              if x["cpu_ms_per_request"] is not None]
    return {
        "variants": variants,
        "floor_cpu_ms_per_request": min(floors) if floors else None,
        "settings": {"reply_bytes": REPLY_BYTES, "concurrency": CONCURRENCY,
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "client": "harness, grpc.aio, one channel per server, raw bytes"},
        "modes": {name: r.summary() for name, r in results.items()},
    }
