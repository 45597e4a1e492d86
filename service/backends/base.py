"""The `Backend` interface every numeric backend implements (one instance per model version).

The service does the latent math; a backend only runs the bundle's ONNX components on batches.
Lifecycle, as the ModelManager drives it::

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
from collections.abc import Callable
from typing import Literal

import numpy as np

from latentserve.core.arrays import F32, I64, Arrays
from latentserve.registry.bundle import Bundle
from latentserve.service import tracing

Component = Literal["decoder", "encoder", "mapping"]


class Backend(abc.ABC):
    """One generator version on a numeric backend; subclasses implement `load/infer/unload`."""

    kind: str = "abstract"

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self._ready = False

    @property
    def ready(self) -> bool:
        """True between a successful `load()` and `unload()`."""
        return self._ready

    @abc.abstractmethod
    async def load(self) -> None:
        """Make the version's components runnable (sessions created / models loaded)."""

    @abc.abstractmethod
    async def infer(self, component: Component, inputs: Arrays) -> Arrays:
        """Run one component on a batch of at most `max_batch_size` rows; returns its outputs."""

    @abc.abstractmethod
    async def unload(self) -> None:
        """Release the version's resources; `ready` becomes False."""

    async def warm(self) -> None:
        """Push one full batch through every component so the first request pays no set-up."""
        n = self.spec.max_batch_size
        z = np.zeros((n, self.spec.latent_dim), dtype=np.float32)
        if self.spec.mapping is not None:
            z = await self.map(z)
        labels = np.zeros(n, dtype=np.int64) if self.spec.condition else None
        images = await self.decode(z, labels)
        if self.spec.encoder is not None:
            await self.encode(images, labels)

    async def map(self, z: F32) -> F32:
        """Map prior latents z [n, N] to W codes [n, w_dim] (two-stage generators), in row order."""
        spec = self.spec.mapping
        if spec is None:
            raise ValueError(f"{self.spec.name} has no mapping network")
        return await self._chunked("mapping", len(z), lambda lo, hi: {spec.input: z[lo:hi]},
                                   spec.output)

    async def to_editing_space(self, z: F32) -> F32:
        """Prior latents z as codes of the editing space: mapped to W for two-stage generators,
        unchanged otherwise."""
        return z if self.spec.mapping is None else await self.map(z)

    async def decode(self, z: F32, labels: I64 | None = None) -> F32:
        """Decode latents of the editing space [n, D] (+ labels [n]) to images [n, C, H, W],
        in row order (D = spec.editing_dim: W codes for two-stage generators)."""
        spec = self.spec.decoder

        def inputs(lo: int, hi: int) -> Arrays:
            chunk: Arrays = {spec.input: z[lo:hi]}
            if spec.condition_input is not None and labels is not None:
                chunk[spec.condition_input] = labels[lo:hi]
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

        return await self._chunked("encoder", len(images), inputs, spec.output_mean)

    async def _chunked(
        self, component: Component, n: int, inputs: Callable[[int, int], Arrays], output: str
    ) -> F32:
        """Run `component` over rows [0, n) in chunks ≤ max_batch_size, concurrently, in order."""
        step = self.spec.max_batch_size
        infer = self._traced_infer if tracing.enabled() else self.infer
        parts = await asyncio.gather(
            *(infer(component, inputs(lo, min(lo + step, n))) for lo in range(0, n, step))
        )
        if not parts:
            raise ValueError("nothing to run: 0 rows")
        if len(parts) == 1:  # the common case: no concatenation copy
            return np.asarray(parts[0][output]).astype(np.float32, copy=False)
        return np.concatenate([p[output] for p in parts]).astype(np.float32, copy=False)

    async def _traced_infer(self, component: Component, inputs: Arrays) -> Arrays:
        """`infer` inside a `backend call` span (the batcher adds its spans below it)."""
        rows = len(next(iter(inputs.values())))
        with tracing.span("backend call", {
                "latentserve.backend": self.kind, "latentserve.model": self.spec.name,
                "latentserve.component": component, "latentserve.rows": rows}):
            return await self.infer(component, inputs)
