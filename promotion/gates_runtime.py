"""Promotion gates that run a bundle on the embedded backend: `smoke` and `latency`.

Both are blocking functions (they drive the async `EmbeddedBackend` with `asyncio.run`, so
call them from synchronous code, not from inside a running event loop)::

    smoke_gate(bundle, Settings(), config.smoke)              # GateResult("smoke", True, ...)
    latency_gate(candidate, holder, Settings(), config.latency)

Failures of the model itself (a session that cannot be created, an inference error, NaN or
out-of-range outputs) make the gate fail; they never raise.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from latentserve.core.arrays import F32, I64
from latentserve.core.errors import LatentServeError
from latentserve.core.latent_ops import interpolate_path, orthogonalize
from latentserve.core.seeding import sample_latents
from latentserve.promotion.gates import GateResult, LatencyConfig, SmokeConfig
from latentserve.registry.bundle import feeds
from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.embedded import EmbeddedBackend
from latentserve.service.generation import edit, truncated
from latentserve.service.settings import Settings

_T = TypeVar("_T")
_MODEL_ERRORS = (LatentServeError, RuntimeError, ValueError, OSError)
"""What a broken model raises from onnxruntime or the backend (ORT's Fail is a RuntimeError)."""


SMOKE_KEY = "[smoke] items, steps, psi, strengths, range_tolerance, seed"


class _SmokeFailure(Exception):
    """One smoke check failed; the message says which output and how."""


# ---------------------------------------------------------------- smoke


def smoke_gate(bundle: Bundle, settings: Settings, config: SmokeConfig) -> GateResult:
    """`smoke`: Sample, Interpolate (lerp/slerp/vp_lerp), Edit (plain and conditional) and
    Encode run on the embedded backend; every output has the right shape, is finite and lies
    in `spec.output.range` (± `range_tolerance`)."""
    try:
        rows = _run(_with_backend(bundle, settings, lambda b: _smoke(b, config)))
    except _SmokeFailure as exc:
        return GateResult("smoke", False, "bad output", str(exc), SMOKE_KEY)
    except _MODEL_ERRORS as exc:
        return GateResult("smoke", False, "error", _describe(exc), SMOKE_KEY)
    lo, hi = bundle.spec.output.range
    return GateResult("smoke", True, f"{rows} rows",
                      f"sample, interpolate, edit{', encode' if bundle.spec.encoder else ''}: "
                      f"outputs finite and in [{lo:g}, {hi:g}]", SMOKE_KEY)


async def _smoke(backend: EmbeddedBackend, config: SmokeConfig) -> int:
    spec = backend.spec
    dim, n = spec.latent_dim, config.items
    async def prior(eps: F32) -> F32:  # z = mean + scale·ε, then W (W+ rows) when two-stage
        return await backend.to_editing_space(feeds.prior_rows(spec, eps))

    rows = 0

    async def decode(what: str, z: F32) -> F32:
        nonlocal rows
        images = await backend.decode(z, _labels(spec.num_classes, len(z)))
        _check_images(what, images, len(z), backend.bundle, config.range_tolerance)
        rows += len(z)
        return images

    samples = truncated(backend.bundle, await prior(sample_latents(config.seed, n, dim)),
                        config.psi)
    images = await decode("sample", samples)
    keyframes = await prior(sample_latents(config.seed + 1, 3, dim))
    for method in ("lerp", "slerp", "vp_lerp"):
        await decode(f"interpolate ({method})",
                     interpolate_path(keyframes, config.steps, method))
    bases = await prior(sample_latents(config.seed + 2, max(1, n // 4), dim))
    strengths = np.asarray(config.strengths, np.float32)
    directions = list(backend.bundle.directions.values())
    for d in directions:
        await decode(f"edit ({d.name})", edit(bases, d.vector, strengths, d.sigma,
                                              num_ws=spec.num_ws, layers=d.spec.layers))
    if len(directions) >= 2:
        first, held = directions[0], directions[1]
        try:
            moved = orthogonalize(first.vector, [held.vector])
        except ValueError:
            moved = None  # the two directions are parallel: nothing to hold fixed
        if moved is not None:
            await decode(f"edit ({first.name} conditional on {held.name})",
                         edit(bases, moved, strengths, first.sigma, num_ws=spec.num_ws,
                              layers=first.spec.layers))
    if spec.encoder is not None:
        latents = await backend.encode(images, _labels(spec.num_classes, len(images)))
        if latents.shape != (len(images), spec.row_dim):
            raise _SmokeFailure(f"encode: latents have shape {list(latents.shape)}, expected "
                                f"{[len(images), spec.row_dim]}")
        if not np.all(np.isfinite(latents)):
            raise _SmokeFailure(f"encode: {int(np.sum(~np.isfinite(latents)))} non-finite "
                                "latent values")
    return rows


def _check_images(what: str, images: F32, n: int, bundle: Bundle, tol: float) -> None:
    spec = bundle.spec
    expected = [n, *spec.output.shape]
    if list(images.shape) != expected:
        raise _SmokeFailure(f"{what}: images have shape {list(images.shape)}, expected {expected}")
    bad = ~np.isfinite(images)
    if bad.any():
        raise _SmokeFailure(f"{what}: {int(bad.sum())} of {images.size} output values are "
                            "NaN or infinite")
    lo, hi = spec.output.range
    low, high = float(images.min()), float(images.max())
    if low < lo - tol or high > hi + tol:
        raise _SmokeFailure(f"{what}: outputs span [{low:.6g}, {high:.6g}], outside "
                            f"output.range [{lo:g}, {hi:g}]")


# ---------------------------------------------------------------- latency


def latency_gate(candidate: Bundle, holder: Bundle | None, settings: Settings,
                 config: LatencyConfig, *, holder_note: str = "") -> GateResult:
    """`latency`: p50 of a `batch`-row decode on the embedded backend.

    With a holder both versions are loaded, warmed and timed in this process, alternating
    which goes first; the candidate passes when p50 ≤ factor × holder p50 + slack_ms.
    Without one (or when the holder cannot run) the per-pixel budget applies.
    `holder_note` explains in the detail why there is no holder to compare with.

    Without a holder the budget scales with what the decoder draws: `budget_us_per_pixel`
    µs per output pixel (H × W of each of the `batch` items), so a 256² VAE gets 16 × the
    budget of a 64² DCGAN; `budget_ms`, when set, is an absolute budget instead.
    """
    bundles = [candidate] if holder is None else [candidate, holder]
    if config.intra_op_threads:
        settings = settings.model_copy(update={"intra_op_threads": config.intra_op_threads})
    try:
        p50s = _run(_time_decodes(bundles, settings, config))
    except _MODEL_ERRORS as exc:
        if holder is None:
            return GateResult("latency", False, "error", _describe(exc), "[latency]")
        # find out whether the candidate or the holder is at fault
        return latency_gate(candidate, None, settings, config,
                            holder_note=f"the holder could not run ({_describe(exc)})")
    mine = p50s[0] * 1000.0
    value = f"{mine:.3f} ms"
    what = f"p50 of {config.runs} decodes of {config.batch} rows"
    threads = f", {settings.intra_op_threads or 'all'} intra-op thread(s)"
    if holder is None:
        note = f"{holder_note}; " if holder_note else "no holder; "
        if config.budget_ms is not None:
            return GateResult("latency", mine <= config.budget_ms, value,
                              f"{what}{threads}; {note}absolute budget {config.budget_ms:g} ms",
                              "[latency] batch, runs, budget_ms")
        _, height, width = candidate.spec.output.shape
        pixels = config.batch * height * width
        budget = config.budget_us_per_pixel * pixels / 1000.0
        return GateResult("latency", mine <= budget, value,
                          f"{what}{threads}; {note}{mine * 1000.0 / pixels:.3g} µs per output "
                          f"pixel; budget {config.budget_us_per_pixel:g} µs × {config.batch} × "
                          f"{height} × {width} pixels = {budget:.1f} ms",
                          "[latency] batch, runs, budget_us_per_pixel (budget_ms: absolute)")
    theirs = p50s[1] * 1000.0
    budget = config.factor * theirs + config.slack_ms
    return GateResult("latency", mine <= budget, value,
                      f"{what}{threads}; holder {theirs:.3f} ms × {config.factor:g} + "
                      f"{config.slack_ms:g} ms slack = {budget:.3f} ms budget",
                      "[latency] batch, runs, factor, slack_ms")


async def _time_decodes(bundles: list[Bundle], settings: Settings,
                        config: LatencyConfig) -> list[float]:
    """p50 seconds per bundle, timing the bundles alternately in one event loop."""
    backends = [EmbeddedBackend(b, settings) for b in bundles]
    try:
        for backend in backends:
            await backend.load()
            await backend.warm()
        inputs = [(await backend.to_editing_space(sample_latents(0, config.batch,
                                                                 backend.spec.latent_dim)),
                   _labels(backend.spec.num_classes, config.batch)) for backend in backends]
        for backend, (z, labels) in zip(backends, inputs, strict=True):
            for _ in range(config.warmup):
                await backend.decode(z, labels)
        times: list[list[float]] = [[] for _ in backends]
        for run in range(config.runs):
            order = range(len(backends)) if run % 2 == 0 else reversed(range(len(backends)))
            for i in order:
                z, labels = inputs[i]
                start = time.perf_counter()
                await backends[i].decode(z, labels)
                times[i].append(time.perf_counter() - start)
        return [statistics.median(t) for t in times]
    finally:
        for backend in backends:
            await backend.unload()


# ---------------------------------------------------------------- helpers


async def _with_backend(bundle: Bundle, settings: Settings,
                        body: Callable[[EmbeddedBackend], Awaitable[_T]]) -> _T:
    backend = EmbeddedBackend(bundle, settings)
    try:
        await backend.load()
        return await body(backend)
    finally:
        await backend.unload()


def _run(coro: Awaitable[_T]) -> _T:
    async def main() -> _T:
        return await coro

    return asyncio.run(main())


def _labels(num_classes: int, n: int) -> I64 | None:
    return (np.arange(n, dtype=np.int64) % num_classes) if num_classes else None


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(text).strip().splitlines()[0][:300]}"
