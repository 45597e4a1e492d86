"""`payload`: one 256-item Sample response as float32, uint8 and PNG — its size and latency.

`bytes` is the serialized GenerateResponse (the gRPC message; framing adds a few bytes per
16 KiB frame), read from a raw stub call; `ms` is the median SDK call (request → numpy / PNG
bytes in hand), one client, back to back. Latents (256 × N float32) are part of every response.
"""

from __future__ import annotations

from typing import Any

import grpc

from bench.config import RunConfig
from bench.load import closed_loop, rounded
from bench.stack import Stack
from latentserve.client import AsyncClient, ModelRef
from latentserve.client.transport import DEFAULT_MAX_MESSAGE_BYTES
from latentserve.client.wire import sample_request
from latentserve.v1 import generator_pb2_grpc as pb_grpc

N = 256
FORMATS = ("float32", "uint8", "png")


async def wire_bytes(address: str, model: str, fmt: str, labels: list[int] | None) -> int:
    """Serialized size of the Sample response for `fmt` (raw stub, no SDK decoding)."""
    limit = DEFAULT_MAX_MESSAGE_BYTES
    options = [("grpc.max_receive_message_length", limit),
               ("grpc.max_send_message_length", limit)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = pb_grpc.GeneratorServiceStub(channel)
        request = sample_request(ModelRef(model), n=N, seed=0, class_labels=labels, output=fmt)
        response = await stub.Sample(request, timeout=60)
        return int(response.ByteSize())


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    svc = stack.embedded()
    model = stack.model.name
    reps, seconds = cfg.pick(30, 2), cfg.pick(5.0, 1.0)
    out: dict[str, Any] = {}
    ok = True
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:
        for fmt in FORMATS:

            async def one(i: int, fmt: str = fmt) -> int:
                result = await client.sample(model, n=N, seed=i, output=fmt,
                                             class_labels=stack.model.labels(N, i))
                got = len(result.png) if fmt == "png" else len(result)
                if got != N:
                    raise AssertionError(f"{fmt}: got {got} items, expected {N}")
                return got

            try:
                size = await wire_bytes(svc.address, model, fmt, stack.model.labels(N))
                res = await closed_loop(one, concurrency=1, duration_s=seconds,
                                        max_requests=reps, warmup_s=0.0)
            except Exception as exc:
                ok = False
                out[fmt] = {"bytes": None, "ms": None, "error": f"{type(exc).__name__}: {exc}"}
                continue
            if res.failed or not res.requests:
                ok = False
            out[fmt] = {"bytes": size, "bytes_per_item": round(size / N, 1),
                        "ms": rounded(res.p(50)), "p90_ms": rounded(res.p(90)),
                        "requests": res.requests, "failed": res.failed, "errors": res.errors}
    out["ok"] = ok
    out["settings"] = {"n": N, "max_requests": reps, "max_seconds": seconds,
                       "bytes": "serialized GenerateResponse incl. latents",
                       "ms": "median SDK call, one client"}
    return out
