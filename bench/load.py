"""Closed-loop load generation: N asyncio workers call one request function until a time or
request budget runs out, recording per-request latency and items produced.

All load runs in the harness's single process and event loop (the service under test runs in
its own process). Example::

    async def one(i: int) -> int:              # returns the items the request produced
        return len(await client.sample(model, n=1, seed=i))

    result = await closed_loop(one, concurrency=64, duration_s=4.0, warmup_s=0.5)
    result.items_per_s, result.p(50)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Request = Callable[[int], Awaitable[int]]
"""One request: gets a running request index, returns how many items it produced."""

MAX_ERRORS_KEPT = 5


@dataclass
class LoadResult:
    """What a load run measured (mergeable across interleaved rounds)."""

    requests: int = 0
    items: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def items_per_s(self) -> float:
        return self.items / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def p(self, q: float) -> float | None:
        """The q-th percentile of successful request latencies in ms (None without data)."""
        return percentile(self.latencies_ms, q)

    def merge(self, other: LoadResult) -> LoadResult:
        """Both runs as one (throughput = all items over all measured time)."""
        return LoadResult(
            self.requests + other.requests,
            self.items + other.items,
            self.failed + other.failed,
            self.elapsed_s + other.elapsed_s,
            self.latencies_ms + other.latencies_ms,
            (self.errors + other.errors)[:MAX_ERRORS_KEPT],
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: throughput, latency percentiles, counts, first errors."""
        return {
            "items_per_s": round(self.items_per_s, 2),
            "requests_per_s": round(self.requests_per_s, 2),
            "p50_ms": rounded(self.p(50)),
            "p90_ms": rounded(self.p(90)),
            "p99_ms": rounded(self.p(99)),
            "requests": self.requests,
            "items": self.items,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "errors": self.errors,
        }


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method) of `values`; None when empty."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """`value` rounded for the JSON (None and non-finite values become None)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den rounded, None when either is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return rounded(num / den)


async def closed_loop(
    request: Request,
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int | None = None,
    warmup_s: float = 0.0,
) -> LoadResult:
    """Run `concurrency` workers back to back for `duration_s` (or `max_requests` in total).

    A warm-up phase of `warmup_s` with the same workers precedes the measured window and is
    not counted. Each worker sends its next request as soon as the previous one returns.
    """
    if concurrency < 1 or duration_s <= 0:
        raise ValueError(f"concurrency must be ≥ 1 and duration_s > 0, got {concurrency}, "
                         f"{duration_s}")
    if warmup_s > 0:
        await _phase(request, concurrency, warmup_s, None, LoadResult(), counter=[10**9])
    result = LoadResult()
    start = time.perf_counter()
    await _phase(request, concurrency, duration_s, max_requests, result, counter=[0])
    result.elapsed_s = time.perf_counter() - start
    return result


async def _phase(request: Request, concurrency: int, duration_s: float,
                 max_requests: int | None, result: LoadResult, counter: list[int]) -> None:
    deadline = time.perf_counter() + duration_s
    budget = [max_requests if max_requests is not None else -1]

    async def worker() -> None:
        while time.perf_counter() < deadline and budget[0] != 0:
            budget[0] -= 1
            index = counter[0]
            counter[0] += 1
            t0 = time.perf_counter()
            try:
                items = await request(index)
            except Exception as exc:
                result.failed += 1
                if len(result.errors) < MAX_ERRORS_KEPT:
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            result.requests += 1
            result.items += items

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def interleaved(
    modes: dict[str, Callable[[], Awaitable[LoadResult]]], rounds: int
) -> dict[str, LoadResult]:
    """Run every mode once per round, in order, `rounds` times; merge each mode's rounds.

    Measuring alternately (A B C, A B C, …) exposes every mode to the same background load,
    so ratios between modes stay meaningful on a shared machine.
    """
    merged = {name: LoadResult() for name in modes}
    for _ in range(rounds):
        for name, run in modes.items():
            merged[name] = merged[name].merge(await run())
    return merged
