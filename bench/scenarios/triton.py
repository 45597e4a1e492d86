"""`triton`: what the service costs in front of a Triton server.

The same loads go (a) through the service with the Triton backend and (b) straight to the same
tritonserver model with tritonclient.grpc.aio (pre-drawn latents and the same class labels,
no service), interleaved: 64 concurrent clients × n=1 (headline throughput), one client × n=64,
and one client × n=1 back to back (p50 latency overhead).

`avg_batch` / `avg_batch_direct`: Triton's own statistics (statistics extension: Δ inference
count ÷ Δ execution count of the model) read right before and after each measured 64×n=1 window,
through the service and direct respectively; `avg_batch_ratio` is the first over the second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient

from bench.config import RunConfig
from bench.load import LoadResult, Request, closed_loop, ratio, rounded
from bench.models import ChosenModel
from bench.probes import Probe, add, derived, group_pids
from bench.results import scenario_targets
from bench.stack import Stack
from latentserve.client import AsyncClient
from latentserve.core.seeding import sample_latents
from latentserve.service.backends.triton import CHANNEL_ARGS

OUTPUT = "float32"
LOADS = {"concurrent": (64, 1), "batched": (1, 64), "sequential": (1, 1)}
"""load name → (concurrency, items per request)."""
COUNTERS = ("inference_count", "execution_count")


async def read_counters(client: InferenceServerClient, model: str) -> dict[str, float]:
    """Triton's statistics for `model` (summed over versions): items inferred and model
    executions so far."""
    stats = await client.get_inference_statistics(model, as_json=True)
    totals = dict.fromkeys(COUNTERS, 0.0)
    for entry in stats.get("model_stats", []):
        for name in COUNTERS:
            totals[name] += float(entry.get(name, 0))
    return totals


def direct_request(client: InferenceServerClient, model: str, chosen: ChosenModel,
                   pool: list[np.ndarray]) -> Callable[[int], Request]:
    """A factory: n → request sending n pre-drawn latents (and, for a conditional model, the
    class labels the service's request i would carry, as int64 [n, 1] like the service's
    Triton backend) straight to Triton, chunked to the model's max batch; returns the images
    as numpy like the SDK does."""
    spec = chosen.bundle.spec
    dec, max_batch = spec.decoder, spec.max_batch_size

    def for_n(n: int) -> Request:
        async def one(i: int) -> int:
            z = pool[i % len(pool)][:n]
            labels = chosen.label_array(n, i)
            done = 0
            for lo in range(0, n, max_batch):
                chunk = np.ascontiguousarray(z[lo:lo + max_batch])
                item = grpcclient.InferInput(dec.input, list(chunk.shape), "FP32")
                item.set_data_from_numpy(chunk)
                inputs = [item]
                if labels is not None and dec.condition_input is not None:
                    part = np.ascontiguousarray(labels[lo:lo + max_batch].reshape(-1, 1))
                    label = grpcclient.InferInput(dec.condition_input, list(part.shape),
                                                  "INT64")
                    label.set_data_from_numpy(part)
                    inputs.append(label)
                result = await client.infer(model, inputs,
                                            outputs=[grpcclient.InferRequestedOutput(dec.output)])
                done += int(result.as_numpy(dec.output).shape[0])
            return done
        return one

    return for_n


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    svc = stack.triton_service()
    server = stack.triton_server()
    spec = stack.model.bundle.spec
    name, model = stack.model.name, stack.triton_model
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.5, 0.1), cfg.pick(3, 1)
    pool = [sample_latents(seed, 64, spec.latent_dim) for seed in range(16)]

    direct_client = InferenceServerClient(server.grpc_url, channel_args=CHANNEL_ARGS)
    try:
        meta = await direct_client.get_server_metadata()
        async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

            def via_service(n: int) -> Request:
                async def one(i: int) -> int:
                    return len(await client.sample(name, n=n, seed=i, output=OUTPUT,
                                                   class_labels=stack.model.labels(n, i)))
                return one

            direct = direct_request(direct_client, model, stack.model, pool)
            targets: dict[str, Callable[[int], Request]] = {"service": via_service,
                                                            "direct": direct}
            results: dict[tuple[str, str], LoadResult] = {}
            raw: dict[tuple[str, str], dict[str, float]] = {}
            batches: dict[str, list[float]] = {t: [0.0, 0.0] for t in targets}
            server_pid = server.pid or -1
            probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids,
                           "tritonserver": lambda: group_pids(server_pid)})
            for _ in range(rounds):
                for load, (concurrency, n) in LOADS.items():
                    for target, make in targets.items():
                        res, delta, cpu = await _measure(make(n), concurrency, seconds, warmup,
                                                         direct_client, model, probe)
                        key = (load, target)
                        results[key] = results[key].merge(res) if key in results else res
                        raw[key] = add(raw.get(key, {}), cpu)
                        if load == "concurrent":
                            batches[target][0] += delta["inference_count"]
                            batches[target][1] += delta["execution_count"]
    finally:
        await direct_client.close()

    def ips(load: str, target: str) -> float:
        return round(results[(load, target)].items_per_s, 1)

    p50_s, p50_d = results[("sequential", "service")].p(50), results[("sequential", "direct")].p(50)
    return {
        "service_ips": ips("concurrent", "service"),
        "direct_ips": ips("concurrent", "direct"),
        "service_vs_direct_ratio": ratio(ips("concurrent", "service"),
                                         ips("concurrent", "direct")),
        "p50_ms_service": rounded(p50_s),
        "p50_ms_direct": rounded(p50_d),
        "p50_overhead_ms": rounded(p50_s - p50_d) if p50_s is not None and p50_d is not None
        else None,
        "avg_batch": ratio(*batches["service"]),
        "avg_batch_direct": ratio(*batches["direct"]),
        "avg_batch_ratio": ratio(ratio(*batches["service"]), ratio(*batches["direct"])),
        "batched_service_ips": ips("batched", "service"),
        "batched_direct_ips": ips("batched", "direct"),
        "batched_service_vs_direct_ratio": ratio(ips("batched", "service"),
                                                 ips("batched", "direct")),
        "triton_version": str(meta.version),
        "targets": scenario_targets("triton"),
        "settings": {"loads": {k: {"concurrency": c, "n": n} for k, (c, n) in LOADS.items()},
                     "headline_load": "concurrent", "output": OUTPUT, "flavor": "python",
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup},
        "modes": {f"{load}.{target}": {**r.summary(), **derived(raw[(load, target)])}
                  for (load, target), r in results.items()},
    }


async def _measure(request: Request, concurrency: int, seconds: float, warmup: float,
                   client: InferenceServerClient, model: str, probe: Probe
                   ) -> tuple[LoadResult, dict[str, float], dict[str, float]]:
    """Warm up, then one measured run with Triton's statistics and CPU use read around it."""
    await closed_loop(request, concurrency=concurrency, duration_s=warmup)
    before = await read_counters(client, model)
    result, cpu = await probe.measure(closed_loop(request, concurrency=concurrency,
                                                  duration_s=seconds))
    after = await read_counters(client, model)
    return result, {k: after[k] - before[k] for k in COUNTERS}, cpu

