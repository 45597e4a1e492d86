"""Projection: the editing-space latents whose decodes reproduce caller images (GAN inversion)
with forward decodes only, as ONNX Runtime and Triton give no gradients at serving time.

Like StyleGAN2-ADA's projector it starts near the prior's mass and searches the editing space
scaled by the spread of the prior there (w_std), but the search is CMA-ES (the `cma` package),
so each step is one population of candidates decoded as a batch instead of a backward pass:

1. start: the encoder's posterior mean when the bundle has one (with every label when a
   conditional model's label is not given), else the best of a batch of prior samples;
2. refine: one CMA-ES per image; each step decodes every image's population together, in
   chunks no larger than the batcher's background cap (`batching.background()`), so other
   requests keep their place in every batch. A W+ generator whose mapping gives one w is
   searched in W, each candidate broadcast to every layer (`search_dim`), as StyleGAN2-ADA's
   projector does: in L·w_dim coordinates a decode budget buys too few generations;
3. polish (editing spaces of at most `projection_polish.MAX_DIM` coordinates): the last
   `projection_polish.SHARE` of the steps, after one decode of each search's final mean, are
   Levenberg–Marquardt steps on a forward-difference Jacobian (dim + 1 decodes per step);
4. the loss is pixel MSE + λ (1 − multiscale SSIM) (`projection_loss`).

Every `progress_every` steps (and at the end) `run` yields a `Snapshot` with the best latents
so far, made canonical on circular factors. Example::

    async for snap in Projection(lease, targets, labels, Plan(steps=60)).run():
        print(snap.step, snap.loss)
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from latentserve.core.arrays import F32, F64, I64
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service import generation, projection_loss, projection_polish
from latentserve.service.backends.batching import background, background_cap
from latentserve.service.canonical import canonical_latents
from latentserve.service.models.lease import Lease
from latentserve.service.projection_polish import Polish

Init = Literal["auto", "encoder", "prior"]
Stop = Literal["", "steps", "timeout", "converged"]

LABEL_CANDIDATES = 2
"""Labels refined per image when a conditional model's label is to be picked: the start's two
best-fitting classes each get a search, and the better result wins (a start that fits a wrong
class slightly better no longer decides)."""
PRIOR_SAMPLES = 128
"""Prior samples decoded (per label when the label is chosen) for a start without encoder."""
SIGMA_ENCODER = 0.25
SIGMA_PRIOR = 0.5
"""CMA-ES step sizes, in units of the prior's spread per coordinate, from each start."""
_SPREAD_SAMPLES = 256
"""Mapped prior samples that measure the spread of W (two-stage generators)."""


@dataclass(frozen=True)
class Plan:
    """How one projection searches (checked by `projection_rpc`)."""

    steps: int = 60
    population: int = 0
    """Candidates per image and step; 0: CMA-ES's default for the size, at least 8."""
    timeout_s: float | None = None
    progress_every: int = 1
    include_reconstruction: bool = False
    seed: int = 0
    init: Init = "auto"
    structure_weight: float = projection_loss.STRUCTURE_WEIGHT


@dataclass
class Snapshot:
    """The search after `step` steps: best latents, losses and (maybe) their images."""

    step: int
    steps: int
    decodes: int
    loss: F64
    initial_loss: F64
    latents: F32
    labels: I64 | None
    images: F32 | None = None
    done: bool = False
    stop: Stop = ""


@dataclass
class _Best:
    """Best candidate so far per image."""

    loss: F64
    latents: F32
    images: F32
    """Decoded images of `latents` (model range)."""
    initial: F64 = field(init=False)

    def __post_init__(self) -> None:
        self.initial = self.loss.copy()

    def update(self, owner: np.ndarray[Any, np.dtype[np.int64]], losses: F64, z: F32,
               images: F32) -> None:
        for i in np.unique(owner):
            rows = np.flatnonzero(owner == i)
            j = rows[int(np.argmin(losses[rows]))]
            if losses[j] < self.loss[i]:
                self.loss[i], self.latents[i], self.images[i] = losses[j], z[j], images[j]


def search_dim(spec: BundleSpec) -> int:
    """Coordinates a projection searches: w_dim for a W+ generator whose mapping gives one w
    (candidates are broadcast to its layers), else the editing space's row size."""
    if spec.num_ws and spec.mapping is not None and not spec.mapping.output_per_layer:
        return spec.editing_dim
    return spec.row_dim


def rows_of(points: F32, layers: int) -> F32:
    """Editing-space rows of searched points: each W point on every one of `layers` W+ layers
    (the points themselves when `layers` is 1)."""
    return points if layers == 1 else np.tile(points, (1, layers))


def points_of(rows: F32, layers: int) -> F32:
    """Searched points of editing-space rows: a W+ row's mean over its `layers` layers (the
    rows themselves when `layers` is 1)."""
    if layers == 1:
        return rows
    return np.asarray(rows.reshape(len(rows), layers, -1).mean(axis=1), rows.dtype)


def population_size(dim: int, asked: int) -> int:
    """Candidates per image and step: the asked number, else CMA-ES's 4 + 3 ln n (≥ 8:
    smaller populations spend the same decodes on more generations, which measured better)."""
    return asked if asked > 0 else max(8, 4 + int(3 * math.log(dim)))


class Projection:
    """One projection request: target images [n, C, H, W] (model range), optional labels."""

    def __init__(self, lease: Lease, targets: F32, labels: I64 | None, plan: Plan) -> None:
        self.lease = lease
        self.spec = lease.bundle.spec
        self.plan = plan
        self.targets = projection_loss.unit_range(targets, self.spec.output.range)
        self.labels = labels
        """Per search after the start (one search per image, or per image and candidate
        label when the label is picked)."""
        self.image_of = np.arange(len(targets), dtype=np.int64)
        """The image each search projects."""
        self.decodes = 0
        self._cap = background_cap(self.spec.max_batch_size)
        self._layers = self.spec.row_dim // search_dim(self.spec)
        """Editing-space rows hold this many copies of a searched point (W+ searched in W)."""

    async def run(self) -> AsyncIterator[Snapshot]:
        """Start, then refine; yields progress snapshots and finally the result (done)."""
        started = time.monotonic()
        best, spread = await self._start()
        plan = self.plan
        yield self._snapshot(0, best, done=plan.steps == 0, stop="steps" if not plan.steps
                             else "")
        if plan.steps == 0:
            return
        sigma0 = SIGMA_PRIOR if self._init == "prior" else SIGMA_ENCODER
        searches = [self._search(best.latents[i], sigma0, spread, i)
                    for i in range(len(self.image_of))]
        polish_steps = self._polish_steps(best.latents.shape[1])
        cma_steps = plan.steps - polish_steps
        polish: Polish | None = None
        stop: Stop = "steps"
        step = 0
        while step < plan.steps:
            step += 1
            if polish is None and step <= cma_steps:
                if not await self._cma_step(searches, best):  # every search has stopped
                    step -= 1
                    if not polish_steps:
                        stop = "converged"
                        break
                    cma_steps = step  # the polish takes the rest
                    continue
            else:
                if polish is None:
                    await self._try_means(searches, best)
                    polish = Polish(best.latents, self._unit(best.images),
                                    self.targets[self.image_of], spread)
                await self._polish_step(polish, best)
            out_of_time = (plan.timeout_s is not None
                           and time.monotonic() - started >= plan.timeout_s)
            if out_of_time or step == plan.steps:
                stop = "timeout" if out_of_time and step < plan.steps else "steps"
                break
            if step % plan.progress_every == 0:
                yield self._snapshot(step, best)
        if polish is None:
            await self._try_means(searches, best)
        yield self._snapshot(step, best, done=True, stop=stop)

    def _polish_steps(self, dim: int) -> int:
        """Steps left to the polish: a share of the plan when the space is small enough."""
        if dim > projection_polish.MAX_DIM or self.plan.steps < 2:
            return 0
        return int(self.plan.steps * projection_polish.SHARE)

    async def _cma_step(self, searches: list[Any], best: _Best) -> bool:
        """One CMA-ES generation of every active search (decoded together); False when
        every search has stopped."""
        active = [i for i, es in enumerate(searches) if not es.stop()]
        if not active:
            return False
        asked = [np.asarray(searches[i].ask(), np.float64) for i in active]
        z = np.concatenate(asked).astype(np.float32)
        owner = np.repeat(np.asarray(active, np.int64), [len(a) for a in asked])
        images = await self._decode(z, None if self.labels is None else self.labels[owner])
        losses = await asyncio.to_thread(self._loss, images, owner)
        best.update(owner, losses, z, images)
        offset = 0
        for i, a in zip(active, asked, strict=True):
            searches[i].tell(list(a), list(losses[offset:offset + len(a)]))
            offset += len(a)
        return True

    async def _polish_step(self, polish: Polish, best: _Best) -> None:
        """One Levenberg–Marquardt step of every search (`projection_polish`)."""
        rows, owner = polish.perturbations()
        labels = self.labels
        decoded = await self._decode(rows, None if labels is None else labels[owner])
        candidates = polish.propose(self._unit(decoded))
        images = await self._decode(candidates, labels)
        searches = np.arange(len(candidates), dtype=np.int64)
        losses = await asyncio.to_thread(self._loss, images, searches)
        better = losses < best.loss
        best.update(searches, losses, candidates, images)
        polish.settle(self._unit(images), better)

    def _unit(self, images: F32) -> F32:
        return projection_loss.unit_range(images, self.spec.output.range)

    async def _try_means(self, searches: list[Any], best: _Best) -> None:
        """Decode each search's final mean once: a converging CMA-ES's mean is usually
        closer to the optimum than any sample it drew (one decode per search)."""
        means = np.stack([np.asarray(es.mean, np.float64) for es in searches]).astype(
            np.float32)
        owner = np.arange(len(searches), dtype=np.int64)
        images = await self._decode(means, self.labels)
        losses = await asyncio.to_thread(self._loss, images, owner)
        best.update(owner, losses, means, images)

    # ------------------------------------------------------------------ start
    @property
    def _init(self) -> Init:
        if self.plan.init == "auto":
            return "encoder" if self.spec.encoder is not None else "prior"
        return self.plan.init

    async def _start(self) -> tuple[_Best, F64]:
        """The starting latents (and labels, when chosen here) and the prior's spread."""
        spread = await self._spread()
        if self._init == "encoder":
            return await self._from_encoder(), spread
        return await self._from_prior(), spread

    async def _spread(self) -> F64:
        """Per-coordinate std of the prior in the searched space (the prior's scale for Z)."""
        if self.spec.mapping is None:
            return np.full(self.spec.row_dim, self.spec.prior.scale, np.float64)
        with background():
            w = await generation.sample(self.lease, self.plan.seed ^ 0x5D, _SPREAD_SAMPLES, None)
        spread: F64 = np.maximum(np.asarray(w, np.float64).std(axis=0), 1e-3)
        return np.asarray(spread.reshape(self._layers, -1).mean(axis=0), np.float64)  # W+ in W

    def _label_options(self) -> I64 | None:
        """Labels to try per image: the given one, or every class when choosing."""
        if self.spec.condition is None:
            return None
        return np.arange(self.spec.num_classes, dtype=np.int64)

    async def _from_encoder(self) -> _Best:
        n = len(self.targets)
        lo, hi = self.spec.output.range
        images = self.targets * (hi - lo) + lo
        if self.labels is not None or self.spec.condition is None:
            enc_labels = self.labels if self._encoder_conditional else None
            z = await self._encode(images, enc_labels)
            decoded = await self._decode_rows(z, self.labels)
            owner = np.arange(n, dtype=np.int64)
            return self._pick(owner, z, decoded, self.labels)
        classes = self._label_options()
        assert classes is not None
        k = len(classes)
        tiled = np.repeat(images, k, axis=0)
        labels = np.tile(classes, n)
        z = await self._encode(tiled, labels if self._encoder_conditional else None)
        decoded = await self._decode_rows(z, labels)
        return self._pick(np.repeat(np.arange(n, dtype=np.int64), k), z, decoded, labels)

    @property
    def _encoder_conditional(self) -> bool:
        return self.spec.encoder is not None and self.spec.encoder.condition_input is not None

    async def _from_prior(self) -> _Best:
        n = len(self.targets)
        with background():
            z = await generation.sample(self.lease, self.plan.seed, PRIOR_SAMPLES, None)
        if self.labels is not None:
            # each image has its label: decode the samples once per label used
            used = np.unique(self.labels)
            zs = np.concatenate([z] * len(used))
            labels = np.repeat(used, len(z))
        elif self.spec.condition is not None:
            classes = self._label_options()
            assert classes is not None
            zs, labels = np.concatenate([z] * len(classes)), np.repeat(classes, len(z))
        else:
            zs, labels = z, None
        decoded = await self._decode_rows(zs, labels)
        # every image may take any candidate whose label fits it
        owner = np.repeat(np.arange(n, dtype=np.int64), len(zs))
        cand = np.tile(np.arange(len(zs)), n)
        if self.labels is not None and labels is not None:
            keep = labels[cand] == self.labels[owner]
            owner, cand = owner[keep], cand[keep]
        return self._pick(owner, zs[cand], decoded[cand],
                          None if labels is None else labels[cand])

    def _pick(self, owner: np.ndarray[Any, np.dtype[np.int64]], z: F32, images: F32,
              labels: I64 | None) -> _Best:
        """The searches' starts: per image its best candidate, or, when the label is picked
        here, the best candidate of each of its LABEL_CANDIDATES best-fitting labels (each
        search then keeps its label)."""
        losses = self._image_loss(images, owner)
        picking = labels is not None and self.labels is None
        chosen: list[int] = []
        for i in range(len(self.targets)):
            rows = np.flatnonzero(owner == i)
            rows = rows[np.argsort(losses[rows], kind="stable")]
            if not picking:
                chosen.append(int(rows[0]))
                continue
            assert labels is not None
            seen: set[int] = set()
            for j in rows:
                if int(labels[j]) not in seen:
                    seen.add(int(labels[j]))
                    chosen.append(int(j))
                if len(seen) == LABEL_CANDIDATES:
                    break
        pick = np.asarray(chosen, np.int64)
        self.image_of = owner[pick]
        if labels is not None:
            self.labels = labels[pick].astype(np.int64)
        return _Best(losses[pick].copy(), points_of(z[pick], self._layers), images[pick].copy())

    # ------------------------------------------------------------------ search
    def _search(self, x0: F32, sigma0: float, spread: F64, index: int) -> Any:
        """One CMA-ES for image `index` with its own random stream (seed, index)."""
        dim = len(x0)
        rng = np.random.default_rng(np.random.SeedSequence([self.plan.seed, index, 0xC3A]))
        options = {
            "popsize": population_size(dim, self.plan.population),
            "CMA_stds": list(spread),
            "CMA_diagonal": dim > 64,  # full covariance is O(dim²) per step
            "seed": np.nan,  # leave numpy's global generator alone: `randn` below draws
            "randn": lambda *size: rng.standard_normal(size),
            "verbose": -9,
            "tolfun": 1e-9,
            "tolflatfitness": 5,
            "maxiter": self.plan.steps + 1,
        }
        return _cma().CMAEvolutionStrategy(np.asarray(x0, np.float64), sigma0, options)

    def _loss(self, images: F32, owner: np.ndarray[Any, np.dtype[np.int64]]) -> F64:
        """Losses of decoded candidates of the searches `owner`."""
        return self._image_loss(images, self.image_of[owner])

    def _image_loss(self, images: F32, image: np.ndarray[Any, np.dtype[np.int64]]) -> F64:
        """Losses of decoded candidates against the target images `image`."""
        unit = projection_loss.unit_range(images, self.spec.output.range)
        return np.asarray(projection_loss.loss(unit, self.targets[image],
                                               structure_weight=self.plan.structure_weight))

    # ------------------------------------------------------------------ backend
    async def _decode(self, points: F32, labels: I64 | None) -> F32:
        """Decode searched points (`_decode_rows` of their rows)."""
        return await self._decode_rows(rows_of(points, self._layers), labels)

    async def _decode_rows(self, z: F32, labels: I64 | None) -> F32:
        """Decode rows in background chunks (≤ the batcher's background cap), in order."""
        self.decodes += len(z)
        backend, step = self.lease.backend, self._cap
        with background():
            parts = await asyncio.gather(*(
                backend.decode(z[lo:lo + step], None if labels is None else labels[lo:lo + step])
                for lo in range(0, len(z), step)))
        return np.concatenate(parts).astype(np.float32, copy=False)

    async def _encode(self, images: F32, labels: I64 | None) -> F32:
        backend, step = self.lease.backend, self._cap
        with background():
            parts = await asyncio.gather(*(
                backend.encode(images[lo:lo + step],
                               None if labels is None else labels[lo:lo + step])
                for lo in range(0, len(images), step)))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _snapshot(self, step: int, best: _Best, *, done: bool = False,
                  stop: Stop = "") -> Snapshot:
        n = len(self.targets)
        winner = np.array([np.flatnonzero(self.image_of == i)[
            int(np.argmin(best.loss[self.image_of == i]))] for i in range(n)])
        initial = np.array([best.initial[self.image_of == i].min() for i in range(n)])
        images = (best.images[winner].copy() if done or self.plan.include_reconstruction
                  else None)
        rows = rows_of(best.latents[winner], self._layers)
        return Snapshot(step=step, steps=self.plan.steps, decodes=self.decodes,
                        loss=best.loss[winner].copy(), initial_loss=initial,
                        latents=canonical_latents(self.spec, rows),
                        labels=None if self.labels is None else self.labels[winner].copy(),
                        images=images, done=done, stop=stop)


@functools.cache
def _cma() -> Any:
    """The `cma` package, imported on the first projection: it pulls in scipy (and tries
    matplotlib, warning when absent), which a server that never projects does not need."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*matplotlib", category=UserWarning)
        import cma

    return cma
