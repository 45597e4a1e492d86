"""`batching`: does the adaptive batcher turn many small requests into big backend batches?

Against the service with the embedded backend, interleaved round by round:
(a) one client asking n=64 per request, (b) 64 concurrent clients asking n=1, (c) one client
asking n=1 back to back, and (d) onnxruntime in this process running the decoder on the same
64-row latent batches (session.run only: the floor the service is measured against).
`service_cpu_ms_per_request`: the service process's CPU time (/proc, all threads and any
worker processes) over the 64-client windows ÷ the requests it served in them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from bench.config import RunConfig
from bench.load import LoadResult, closed_loop, interleaved, ratio
from bench.probes import Probe, derived
from bench.results import scenario_targets
from bench.stack import Stack
from latentserve.client import AsyncClient
from latentserve.core.seeding import sample_latents
from latentserve.service.backends.embedded import make_session

BATCH = 64
CONCURRENCY = 64
OUTPUT = "float32"
FIXED_DELAY_MS = 2.0
"""The opt-in fixed-delay policy compared against the adaptive one (Triton-like window)."""


def inprocess_runner(stack: Stack, seconds: float, intra_op_threads: int,
                     spinning: bool, n: int = BATCH) -> LoadResult:
    """Decoder session.run on n-row batches (default 64) in this process for `seconds` (same
    latents and class labels as the service's requests)."""
    bundle = stack.model.bundle
    session = make_session(bundle.decoder_path, intra_op_threads, spinning=spinning)
    batches = [stack.model.decoder_feed(sample_latents(seed, n, bundle.spec.latent_dim),
                                        start=seed) for seed in range(8)]
    session.run(None, batches[0])  # warm
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + seconds
    i = 0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        out = session.run(None, batches[i % len(batches)])
        result.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        result.requests += 1
        result.items += int(np.asarray(out[0]).shape[0])
        i += 1
    result.elapsed_s = time.perf_counter() - start
    return result


async def run(stack: Stack, cfg: RunConfig, *, policies: bool = True) -> dict[str, Any]:
    """The scenario; `policies=False` skips the service variants (`compare_policies`)."""
    svc = stack.embedded()
    model = stack.model.name
    seconds = cfg.pick(4.0, 0.3)
    warmup = cfg.pick(0.5, 0.1)
    rounds = cfg.pick(3, 1)
    threads = int(svc.settings.get("INTRA_OP_THREADS", "0"))
    # parsed as the service parses it (pydantic's bool), so "on"/"off" agree too
    spinning = TypeAdapter(bool).validate_python(svc.settings.get("INTRA_OP_SPINNING", "false"))

    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

        async def sample(n: int, i: int) -> int:
            return len(await client.sample(model, n=n, seed=i, output=OUTPUT,
                                           class_labels=stack.model.labels(n, i)))

        async def batched() -> LoadResult:
            return await closed_loop(lambda i: sample(BATCH, i), concurrency=1,
                                     duration_s=seconds, warmup_s=warmup)

        async def concurrent() -> LoadResult:
            return await closed_loop(lambda i: sample(1, i), concurrency=CONCURRENCY,
                                     duration_s=seconds, warmup_s=warmup)

        async def sequential() -> LoadResult:
            return await closed_loop(lambda i: sample(1, i), concurrency=1,
                                     duration_s=seconds, warmup_s=warmup)

        async def inprocess() -> LoadResult:
            return inprocess_runner(stack, seconds, threads, spinning)

        probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids},
                      service_metrics=svc.metrics_url)
        raw: dict[str, dict[str, float]] = {}

        modes = {"batched": batched, "concurrent": concurrent, "sequential": sequential,
                 "inprocess": inprocess}
        results = await interleaved({k: probe.summed(k, v, raw) for k, v in modes.items()}, rounds)

    ips = {name: r.items_per_s for name, r in results.items()}
    policy = await compare_policies(stack, model, seconds, warmup) if policies else {}
    return {
        "batched_ips": round(ips["batched"], 1),
        "concurrent_ips": round(ips["concurrent"], 1),
        "sequential_ips": round(ips["sequential"], 1),
        "inprocess_ips": round(ips["inprocess"], 1),
        "concurrent_vs_batched_ratio": ratio(ips["concurrent"], ips["batched"]),
        "concurrent_vs_sequential_ratio": ratio(ips["concurrent"], ips["sequential"]),
        "service_vs_inprocess_ratio": ratio(ips["batched"], ips["inprocess"]),
        "service_cpu_ms_per_request": cpu_ms_per_request(results["concurrent"],
                                                         raw["concurrent"]),
        "targets": scenario_targets("batching"),
        "settings": {"batch": BATCH, "concurrency": CONCURRENCY, "output": OUTPUT,
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "inprocess": "decoder session.run on the same 64-row latents, "
                                  "make_session() options as the service"},
        "modes": {name: {**r.summary(), **derived(raw[name])} for name, r in results.items()},
        "policy": policy,
    }


async def compare_policies(stack: Stack, model: str, seconds: float,
                           warmup: float) -> dict[str, Any]:
    """Service variants side by side: adaptive batching (the default), an opt-in fixed delay,
    ONNX Runtime thread spinning on, and the standard asyncio loop instead of uvloop.
    Lone-request latency, 64×n=1 throughput, and the service's CPU milliseconds per request in
    each."""
    services = {"adaptive": stack.embedded(),
                "fixed_delay": stack.start_service("embedded-delay", stack.service_settings(
                    BATCH_MAX_DELAY_MS=str(FIXED_DELAY_MS))),
                "spinning": stack.start_service("embedded-spinning", stack.service_settings(
                    INTRA_OP_SPINNING="true")),
                "asyncio_loop": stack.start_service("embedded-asyncio", stack.service_settings(
                    EVENT_LOOP="asyncio"))}
    out: dict[str, Any] = {"fixed_delay_ms": FIXED_DELAY_MS}
    for name, svc in services.items():
        probe = Probe({"service": svc.pids})
        async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

            async def one(i: int, c: AsyncClient = client) -> int:
                return len(await c.sample(model, n=1, seed=i, output=OUTPUT,
                                          class_labels=stack.model.labels(1, i)))

            lone, lone_raw = await probe.measure(
                closed_loop(one, concurrency=1, duration_s=seconds, warmup_s=warmup))
            crowd, crowd_raw = await probe.measure(
                closed_loop(one, concurrency=CONCURRENCY, duration_s=seconds, warmup_s=warmup))
        out[name] = {"sequential_p50_ms": lone.p(50),
                     "sequential_ips": round(lone.items_per_s, 1),
                     "sequential_cpu_ms_per_request": cpu_ms_per_request(lone, lone_raw),
                     "concurrent_ips": round(crowd.items_per_s, 1),
                     "concurrent_p50_ms": crowd.p(50),
                     "concurrent_cpu_ms_per_request": cpu_ms_per_request(crowd, crowd_raw)}
    return out


def cpu_ms_per_request(result: LoadResult, raw: dict[str, float]) -> float | None:
    """Service CPU milliseconds (all threads) per request: the probe spans warm-up and the
    measured window alike, so its CPU is divided by the measured rate times its wall time."""
    served = result.requests_per_s * raw["wall_s"]
    return round(raw["cpu_s.service"] * 1000.0 / served, 3) if served else None
