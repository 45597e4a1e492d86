"""`workers`: does running the service as several worker processes raise n=1 throughput?

One service per worker count (`LATENTSERVE_WORKERS` = 1 and 2), both up at once, measured in
interleaved rounds: 64 concurrent clients × n=1 and one client × n=1 back to back. The 64
clients are spread over `CHANNELS` gRPC channels with distinct channel arguments, so they open
separate TCP connections (gRPC shares one connection between channels with equal arguments)
and a kernel-balanced listening port can hand them to different workers. CPU is that of the
service process and all its children. When the service under test has no WORKERS setting, that
is recorded (`setting_known` false) and every point runs one process.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from bench.config import RunConfig
from bench.load import LoadResult, closed_loop, interleaved, ratio, rounded
from bench.probes import Probe, add, derived
from bench.processes import ServiceProcess, known_setting
from bench.scenarios.batching import cpu_ms_per_request
from bench.stack import Stack
from latentserve.client import AsyncClient
from latentserve.client.transport import DEFAULT_MAX_MESSAGE_BYTES

WORKER_COUNTS = (1, 2)
CONCURRENCY = 64
CHANNELS = 8
OUTPUT = "float32"
SETTING = "WORKERS"


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    model = stack.model
    known = known_setting(SETTING)
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.3, 0.05), cfg.pick(3, 1)
    services: dict[int, ServiceProcess] = {
        w: stack.start_service(f"workers-{w}", stack.service_settings(**{SETTING: str(w)}))
        for w in WORKER_COUNTS}
    modes = {}
    raw: dict[str, dict[str, float]] = {}
    async with contextlib.AsyncExitStack() as exits:
        for w, svc in services.items():
            # distinct arguments per channel → distinct connections (see module docstring)
            clients = [await exits.enter_async_context(AsyncClient(
                svc.address, retries=0, timeout_s=60,
                max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES + k)) for k in range(CHANNELS)]
            probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids})

            def request(cs: list[AsyncClient] = clients) -> Any:
                async def one(i: int) -> int:
                    out = await cs[i % len(cs)].sample(model.name, n=1, seed=i, output=OUTPUT,
                                                       class_labels=model.labels(1, i))
                    return len(out)
                return one

            def mode(name: str, concurrency: int, probe: Probe = probe,
                     one: Any = request()) -> Any:
                async def measured() -> LoadResult:
                    result, delta = await probe.measure(closed_loop(
                        one, concurrency=concurrency, duration_s=seconds, warmup_s=warmup))
                    raw[name] = add(raw.get(name, {}), delta)
                    return result
                return measured

            modes[f"concurrent.w{w}"] = mode(f"concurrent.w{w}", CONCURRENCY)
            modes[f"sequential.w{w}"] = mode(f"sequential.w{w}", 1)
        results = await interleaved(modes, rounds)
    processes = {w: len(svc.pids()) for w, svc in services.items()}
    for svc in services.values():
        svc.stop()  # these services are only for this scenario
    curve = []
    for w in WORKER_COUNTS:
        crowd, lone = results[f"concurrent.w{w}"], results[f"sequential.w{w}"]
        curve.append({"workers": w, "concurrent_ips": round(crowd.items_per_s, 1),
                      "sequential_ips": round(lone.items_per_s, 1), "p50_ms": rounded(lone.p(50)),
                      "concurrent_p50_ms": rounded(crowd.p(50)),
                      "service_cpu_ms_per_request": cpu_ms_per_request(
                          crowd, raw[f"concurrent.w{w}"]),
                      "processes": processes[w],
                      "failed": crowd.failed + lone.failed})
    by_w = {p["workers"]: p for p in curve}
    return {
        "curve": curve,
        "concurrent_ratio_2_vs_1": ratio(by_w[2]["concurrent_ips"], by_w[1]["concurrent_ips"]),
        "setting_known": known,
        "note": None if known else (f"the service under test has no {SETTING} setting: it "
                                    "ignores it, so every point is one process"),
        "settings": {"worker_counts": list(WORKER_COUNTS), "concurrency": CONCURRENCY,
                     "channels": CHANNELS, "n": 1, "output": OUTPUT,
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "p50_ms": "one client × n=1"},
        "modes": {name: {**r.summary(), **derived(raw[name])} for name, r in results.items()},
    }
