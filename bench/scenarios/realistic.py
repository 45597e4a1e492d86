"""`realistic`: the `batching`, `triton` and `peers` scenarios again, on a realistic decoder.

The zoo models are small; what the service adds shows differently on a network whose decode
costs milliseconds. This scenario builds the PyTorch DCGAN-tutorial generator (3.6 M
parameters, z [100] → 3×64×64; `bench.realistic`: exported once and cached, made into a bundle
with the project's builder), serves it from its own throw-away registry on its own services
(a second `Stack` in `<work>/realistic`), and runs the three scenarios' own code on it
unchanged: their sections land under `realistic.batching`, `realistic.triton` and
`realistic.peers` (MLServer only at its best settings — `parallel_workers` 0, adaptive batching
off and on — instead of all five configurations; quick mode runs batching off only and leaves
out the `batching` scenario's service variants).

`reference`: in-process ONNX Runtime (the service's session options) at n=1, interleaved with
one client × n=1 through the embedded service; at n=64 the `batching` section's `inprocess`
mode is the reference. The headline keys compare the service with those floors:

- `batched_vs_inprocess_ratio`: one client × n=64 ÷ in-process n=64 (≥ 0.95);
- `concurrent_vs_inprocess_ratio`: 64 clients × n=1 ÷ in-process n=64 (≥ 0.85);
- `sequential_p50_overhead_ms`: service p50 − in-process p50, one client × n=1 (≤ 0.5 ms);
- `concurrent_vs_mlserver_ratio`: 64 clients × n=1, latentserve ÷ MLServer's best (≥ 1.5).
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from bench.config import RunConfig
from bench.load import LoadResult, closed_loop, interleaved, ratio, rounded
from bench.models import Registries
from bench.probes import Probe, derived
from bench.realistic import realistic_model
from bench.results import scenario_targets
from bench.scenarios import batching, peers, triton
from bench.stack import Stack
from latentserve.client import AsyncClient

MLSERVER_CONFIGS = ("workers0-nobatching", "workers0-batching")
"""MLServer's best settings: inference in the server process, adaptive batching off (best for
small requests on the zoo decoders) and on (it may win at 64 × n=1 on a decoder this costly).
Quick mode runs the first only."""
Part = Callable[[Stack, RunConfig], Awaitable[dict[str, Any]]]


async def _batching(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    """The batching scenario; its service variants only in a full run (each starts a service)."""
    return await batching.run(stack, cfg, policies=not cfg.quick)


async def _peers_at_best(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    """The peers scenario on MLServer's best settings (the best per load is compared)."""
    return await peers.run(stack, cfg, configs_only=MLSERVER_CONFIGS[:cfg.pick(2, 1)])


PARTS: dict[str, Part] = {"batching": _batching, "triton": triton.run, "peers": _peers_at_best}
"""The scenarios run on the realistic decoder, in order, each into its own subsection."""


async def reference(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    """In-process n=1 decode vs one client × n=1 through the embedded service, interleaved;
    with the service's CPU per request."""
    svc = stack.embedded()
    model = stack.model
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.5, 0.1), cfg.pick(3, 1)
    threads = int(svc.settings.get("INTRA_OP_THREADS", "0"))
    spinning = TypeAdapter(bool).validate_python(svc.settings.get("INTRA_OP_SPINNING", "false"))
    probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids},
                  service_metrics=svc.metrics_url)
    raw: dict[str, dict[str, float]] = {}
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

        async def one(i: int) -> int:
            return len(await client.sample(model.name, n=1, seed=i, output=batching.OUTPUT,
                                           class_labels=model.labels(1, i)))

        async def service_n1() -> LoadResult:
            return await closed_loop(one, concurrency=1, duration_s=seconds, warmup_s=warmup)

        async def inprocess_n1() -> LoadResult:
            return batching.inprocess_runner(stack, seconds, threads, spinning, n=1)

        results = await interleaved(
            {"inprocess_n1": probe.summed("inprocess_n1", inprocess_n1, raw),
             "service_n1": probe.summed("service_n1", service_n1, raw)}, rounds)
    inproc, service = results["inprocess_n1"].p(50), results["service_n1"].p(50)
    return {
        "inprocess_n1_p50_ms": rounded(inproc),
        "service_n1_p50_ms": rounded(service),
        "inprocess_n1_ips": round(results["inprocess_n1"].items_per_s, 1),
        "service_n1_ips": round(results["service_n1"].items_per_s, 1),
        "service_n1_cpu_ms_per_request": batching.cpu_ms_per_request(results["service_n1"],
                                                                     raw["service_n1"]),
        "settings": {"seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "inprocess": "decoder session.run, one row, make_session() options as "
                                  "the service", "intra_op_threads": threads,
                     "spinning": spinning},
        "modes": {name: {**r.summary(), **derived(raw[name])} for name, r in results.items()},
    }


def headline(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The realistic decoder's targets from its subsections (None where a part is missing)."""
    bat, ref, peer = (sections.get(k) or {} for k in ("batching", "reference", "peers"))
    inproc, service = ref.get("inprocess_n1_p50_ms"), ref.get("service_n1_p50_ms")
    return {
        "inprocess_n64_ips": bat.get("inprocess_ips"),
        "inprocess_n1_p50_ms": inproc,
        "batched_vs_inprocess_ratio": ratio(bat.get("batched_ips"), bat.get("inprocess_ips")),
        "concurrent_vs_inprocess_ratio": ratio(bat.get("concurrent_ips"),
                                               bat.get("inprocess_ips")),
        "sequential_p50_overhead_ms": rounded(service - inproc)
        if service is not None and inproc is not None else None,
        "concurrent_vs_mlserver_ratio": peer.get("concurrent_ratio"),
    }


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    sub_cfg = replace(cfg, work_dir=cfg.work_dir / "realistic",
                      out_dir=cfg.out_dir / "realistic")
    chosen = await asyncio.to_thread(realistic_model, sub_cfg)
    sections: dict[str, dict[str, Any]] = {}
    with Stack(sub_cfg, model=chosen) as sub:
        sub.registries = Registries(sub_cfg.work_dir / "registries", template_from=stack.registries)
        parts: dict[str, Part] = {"reference": reference, **PARTS}
        for name, part in parts.items():
            t0 = time.perf_counter()
            try:
                sections[name] = await part(sub, sub_cfg)
            except Exception:
                sections[name] = {"error": traceback.format_exc()[-6000:]}
            sections[name]["seconds"] = round(time.perf_counter() - t0, 1)
        services = sub.facts()["services"]
    return {**headline(sections), "targets": scenario_targets("realistic"), "model": chosen.facts(),
            "services": services, **sections}
