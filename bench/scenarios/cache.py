"""`cache`: what the response cache buys for a repeated request, and that it changes no bit.

A service of its own runs with `LATENTSERVE_RESPONSE_CACHE_BYTES` set (every other benchmark
service runs with it 0). One client, Sample n=64, interleaved round by round: `hit` repeats one
request (primed once before measuring), `miss` asks for a seed never asked before.
`hit_speedup` = miss p50 ÷ hit p50. `bit_identical`: the hit's latents and images equal, byte
for byte, both the first (computed) answer of the cache service and the same request computed by
a service with the cache off. When the service under test has no such setting, that is recorded
(`setting_known` false) and the figures are still measured (a hit then costs what a miss does).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from bench.config import RunConfig
from bench.load import LoadResult, closed_loop, interleaved, rounded
from bench.probes import metrics_text
from bench.processes import known_setting
from bench.results import scenario_targets
from bench.stack import Stack
from latentserve.client import AsyncClient, GenerateResult

N = 64
OUTPUT = "float32"
CACHE_BYTES = 256 * 2**20
SETTING = "RESPONSE_CACHE_BYTES"
HIT_SEED = 7
MISS_SEED_BASE = 10_000_000


def same_bits(a: GenerateResult, b: GenerateResult) -> bool:
    """Latents and images equal byte for byte (dtype and shape included)."""
    if a.images is None or b.images is None:
        return False
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in ((a.latents, b.latents), (a.images, b.images)))


def cache_series(metrics_url: str) -> dict[str, float]:
    """The service's metric series whose name mentions a cache (whatever they are called)."""
    try:
        text = metrics_text(metrics_url)
    except OSError:
        return {}
    found = re.findall(r"^(latentserve_\w*cache\w*(?:\{[^}]*\})?) ([0-9.e+-]+)$", text,
                       re.MULTILINE)
    return {name: float(value) for name, value in found if not name.endswith("_created")}


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    model = stack.model
    known = known_setting(SETTING)
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.3, 0.05), cfg.pick(3, 1)
    svc = stack.start_service("cache", stack.service_settings(
        **{SETTING: str(CACHE_BYTES)}))
    plain = stack.embedded()
    labels = model.labels(N, HIT_SEED)
    fresh = itertools.count(MISS_SEED_BASE)
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client, \
            AsyncClient(plain.address, retries=0, timeout_s=60) as reference:

        async def sample(seed: int) -> GenerateResult:
            return await client.sample(model.name, n=N, seed=seed, output=OUTPUT,
                                       class_labels=model.labels(N, seed))

        first = await client.sample(model.name, n=N, seed=HIT_SEED, output=OUTPUT,
                                    class_labels=labels)
        computed = await reference.sample(model.name, n=N, seed=HIT_SEED, output=OUTPUT,
                                          class_labels=labels)
        before = cache_series(svc.metrics_url)

        async def hit(_: int) -> int:
            return len(await sample(HIT_SEED))

        async def miss(_: int) -> int:
            return len(await sample(next(fresh)))

        async def hits() -> LoadResult:
            return await closed_loop(hit, concurrency=1, duration_s=seconds, warmup_s=warmup)

        async def misses() -> LoadResult:
            return await closed_loop(miss, concurrency=1, duration_s=seconds, warmup_s=warmup)

        results = await interleaved({"hit": hits, "miss": misses}, rounds)
        again = await sample(HIT_SEED)
        after = cache_series(svc.metrics_url)
    svc.stop()  # this service is only for this scenario
    hit_p50, miss_p50 = results["hit"].p(50), results["miss"].p(50)
    speedup = rounded(miss_p50 / hit_p50) if hit_p50 and miss_p50 is not None else None
    return {
        "hit_speedup": speedup,
        "bit_identical": same_bits(again, first) and same_bits(again, computed),
        "setting_known": known,
        "hit_p50_ms": rounded(hit_p50),
        "miss_p50_ms": rounded(miss_p50),
        "hit_ips": round(results["hit"].items_per_s, 1),
        "miss_ips": round(results["miss"].items_per_s, 1),
        "cache_metrics": {k: rounded(after[k] - before.get(k, 0.0)) for k in sorted(after)},
        "targets": scenario_targets("cache"),
        "note": None if known else (f"the service under test has no {SETTING} setting: it "
                                    "ignores it, so a repeated request is computed again"),
        "settings": {"n": N, "output": OUTPUT, SETTING.lower(): CACHE_BYTES,
                     "hit": f"Sample n={N} seed={HIT_SEED} repeated (primed once)",
                     "miss": f"Sample n={N}, a new seed every request",
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "bit_identical": "hit vs first answer and vs a cache-off service"},
        "modes": {name: r.summary() for name, r in results.items()},
    }
