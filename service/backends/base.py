"""The `Backend` interface every numeric backend implements (one instance per model version).

The service does the latent math; a backend only runs the bundle's ONNX components on batches.
Every backend puts one `AdaptiveBatcher` per component in front of its model calls
(`_open_batchers` in `load()`), so concurrent requests for a version and component merge into
one backend call whatever the backend. Lifecycle, as the ModelManager drives it::

    backend = make_backend(settings, bundle)   # see latentserve.service.backends.factory
    await backend.load()
    await backend.warm()                       # one full batch through each component
    w = await backend.map(z)                   # two-stage generators: prior z → W
    images = await backend.decode(w, labels)   # any n: split into chunks ≤ max_batch_size
    await backend.unload()
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np

from latentserve.core.arrays import F32, I64, Arrays
from latentserve.core.errors import Unavailable
from latentserve.registry.bundle import feeds
from latentserve.registry.bundle.feeds import NoiseChoice
from latentserve.registry.bundle.files import Bundle
from latentserve.service import tracing
from latentserve.service.backends.batching import (
    AdaptiveBatcher,
    AsyncRunBatch,
    BatchObserver,
    RunBatch,
)
from latentserve.service.backends.pacing import InflightLimit
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings

Component = Literal["decoder", "encoder", "mapping"]


class Backend(abc.ABC):
    """One generator version on a numeric backend; subclasses implement `load/unload` and open
    one batcher per component (`_open_batchers`) whose run function calls the model."""

    kind: str = "abstract"

    def __init__(self, bundle: Bundle, *, metrics: ServiceMetrics | None = None) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self._ready = False
        self._metrics = metrics
        self._batchers: dict[Component, AdaptiveBatcher] = {}
        self._noise_cache: dict[str, dict[str, F32]] = {}

    @property
    def ready(self) -> bool:
        """True between a successful `load()` and `unload()`."""
        return self._ready

    @abc.abstractmethod
    async def load(self) -> None:
        """Make the version's components runnable (sessions created / models loaded)."""

    async def infer(self, component: Component, inputs: Arrays) -> Arrays:
        """Run one component on at most `max_batch_size` rows; returns its outputs.

        Goes through the component's batcher: concurrent calls share backend calls."""
        batcher = self._batchers.get(component)
        if batcher is None or not self._ready:
            raise Unavailable(f"{self.spec.name} {component} is not loaded")
        return await batcher.submit(inputs)

    def _open_batchers(self, runs: Mapping[Component, RunBatch | AsyncRunBatch],
                       settings: Settings, *, max_inflight: int,
                       limits: Mapping[Component, InflightLimit] | None = None) -> None:
        """One batcher per component (kept if already open) calling `runs[component]`, with
        up to `max_inflight` batches in flight (fewer while `limits[component]` says so)."""
        for component, run in runs.items():
            if component in self._batchers:
                continue
            batcher = AdaptiveBatcher(
                run,
                max_batch_size=self.spec.max_batch_size,
                max_queue_items=settings.max_queue_items,
                max_delay_s=settings.batch_max_delay_ms / 1000.0,
                max_inflight=max_inflight,
                busy_hold_s=settings.batch_busy_hold_ms / 1000.0,
                inflight_limit=(limits or {}).get(component),
                on_batch=self._observer(component),
                on_queue=self._queue_gauge(component),
                on_background=self._queue_gauge(component, background=True),
                name=f"{self.spec.name}-{component}",
            )
            batcher.start()
            self._batchers[component] = batcher

    async def _close_batchers(self) -> None:
        """Stop every batcher: queued requests fail, running batches finish."""
        batchers, self._batchers = self._batchers, {}
        for batcher in batchers.values():
            await batcher.stop()

    def _observer(self, component: Component) -> BatchObserver | None:
        metrics = self._metrics
        if metrics is None:
            return None
        sizes = metrics.batch_size.labels(model=self.spec.name, component=component)
        seconds = metrics.backend_latency.labels(model=self.spec.name, component=component)

        def observe(rows: int, elapsed: float) -> None:
            sizes.observe(rows)
            seconds.observe(elapsed)

        return observe

    def _queue_gauge(self, component: Component,
                     background: bool = False) -> Callable[[int], None] | None:
        metrics = self._metrics
        if metrics is None:
            return None
        series = metrics.background_queue_items if background else metrics.queue_items
        gauge = series.labels(model=self.spec.name, component=component)
        return gauge.set

    @abc.abstractmethod
    async def unload(self) -> None:
        """Release the version's resources; `ready` becomes False."""

    async def warm(self) -> None:
        """Push one full batch through every component so the first request pays no set-up."""
        n = self.spec.max_batch_size
        z = np.full((n, self.spec.latent_dim), self.spec.prior.mean, dtype=np.float32)
        if self.spec.mapping is not None:
            z = await self.map(z)
        labels = np.zeros(n, dtype=np.int64) if self.spec.condition else None
        images = await self.decode(z, labels)
        if self.spec.encoder is not None:
            await self.encode(images, labels)

    async def map(self, z: F32) -> F32:
        """Map prior latents z [n, N] to W codes [n, w_dim] (two-stage generators; W+: rows
        [n, num_ws·w_dim], a per-item w broadcast to every layer), in row order."""
        spec = self.spec.mapping
        if spec is None:
            raise ValueError(f"{self.spec.name} has no mapping network")
        shape = self.spec.prior_shape
        out = await self._chunked(
            "mapping", len(z), lambda lo, hi: {spec.input: feeds.shaped(z[lo:hi], shape)},
            spec.output)
        return feeds.mapping_rows(self.spec, out)

    async def to_editing_space(self, z: F32) -> F32:
        """Prior latents z as codes of the editing space: mapped to W for two-stage generators,
        unchanged otherwise."""
        return z if self.spec.mapping is None else await self.map(z)

    async def decode(self, z: F32, labels: I64 | None = None,
                     noise: NoiseChoice | None = None) -> F32:
        """Decode editing-space rows [n, row_dim] (+ labels [n]) to images [n, C, H, W], in
        row order; the decoder sees them shaped [n, *editing_shape] (ws [n, L, w_dim] for W+)
        and its noise inputs get `noise` (the model's default when None) for items
        offset … offset+n-1."""
        spec = self.spec.decoder
        shape = self.spec.editing_shape
        noise_feeds: Arrays = {}
        if spec.noise_inputs:
            choice = noise or feeds.default_noise(self.spec)
            if choice.mode == "seeded":  # one draw per item and input: off the event loop
                items = range(choice.offset, choice.offset + len(z))
                drawn = await asyncio.to_thread(feeds.noise_feeds, self.spec, choice, items)
                noise_feeds.update(drawn)
            else:
                noise_feeds = self._fixed_noise(choice, len(z))

        def inputs(lo: int, hi: int) -> Arrays:
            chunk: Arrays = {spec.input: feeds.shaped(z[lo:hi], shape)}
            if spec.condition_input is not None and labels is not None:
                chunk[spec.condition_input] = labels[lo:hi]
            for name, values in noise_feeds.items():
                chunk[name] = np.ascontiguousarray(values[lo:hi])
            return chunk

        return await self._chunked("decoder", len(z), inputs, spec.output)

    async def encode(self, images: F32, labels: I64 | None = None) -> F32:
        """Encode images [n, C, H, W] to editing-space means [n, D], in row order."""
        spec = self.spec.encoder
        if spec is None:
            raise ValueError(f"{self.spec.name} has no encoder")

        def inputs(lo: int, hi: int) -> Arrays:
            chunk: Arrays = {spec.input: images[lo:hi]}
            if spec.condition_input is not None and labels is not None:
                chunk[spec.condition_input] = labels[lo:hi]
            return chunk

        return feeds.encoder_rows(
            self.spec, await self._chunked("encoder", len(images), inputs, spec.output_mean))

    def _fixed_noise(self, choice: NoiseChoice, n: int) -> Arrays:
        """Const or zero noise for n rows: one item's arrays drawn once, then broadcast."""
        one: dict[str, F32] | None = self._noise_cache.get(choice.mode)
        if one is None:
            one = self._noise_cache[choice.mode] = feeds.noise_feeds(self.spec, choice, [0])
        return {name: np.broadcast_to(v, (n, *v.shape[1:])) for name, v in one.items()}

    async def _chunked(
        self, component: Component, n: int, inputs: Callable[[int, int], Arrays], output: str
    ) -> F32:
        """Run `component` over rows [0, n) in chunks ≤ max_batch_size, concurrently, in order."""
        step = self.spec.max_batch_size
        infer = self._traced_infer if tracing.enabled() else self.infer
        if n <= 0:
            raise ValueError("nothing to run: 0 rows")
        if n <= step:  # the common case: no task per chunk, no concatenation copy
            return np.asarray((await infer(component, inputs(0, n)))[output]).astype(
                np.float32, copy=False)
        parts = await asyncio.gather(
            *(infer(component, inputs(lo, min(lo + step, n))) for lo in range(0, n, step))
        )
        return np.concatenate([p[output] for p in parts]).astype(np.float32, copy=False)

    async def _traced_infer(self, component: Component, inputs: Arrays) -> Arrays:
        """`infer` inside a `backend call` span (the batcher adds its spans below it)."""
        rows = len(next(iter(inputs.values())))
        with tracing.span("backend call", {
                "latentserve.backend": self.kind, "latentserve.model": self.spec.name,
                "latentserve.component": component, "latentserve.rows": rows}):
            return await self.infer(component, inputs)
