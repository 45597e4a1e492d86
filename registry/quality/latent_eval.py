"""Direction quality measured on images: does editing along a direction move the measure it
names, on every seed, and how much does it move the others, plainly and as a conditional edit?

The caller supplies how to edit (the service, onnxruntime or torch) and how to measure
images (e.g. `sprite_measures`); this module only does the statistics. Example::

    def edit(direction, strengths, conditional_on):          # → images [bases, S, C, H, W]
        return client.edit("sprites-vae", seeds=SEEDS, direction=direction,
                           strengths=strengths, conditional_on=conditional_on,
                           class_labels=LABELS).images.reshape(len(SEEDS), len(strengths), ...)
    quality = direction_quality(edit, measure, {"scale": "ink", "pos_x": "pos_x"})
    quality["scale"].within, quality["scale"].pooled, quality["scale"].leak_ratio
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64
from latentserve.registry.bundle.spec import DirectionQualitySpec

STRENGTHS: tuple[float, ...] = tuple(float(s) for s in np.linspace(-3.0, 3.0, 13))
"""The edit sweep, in each direction's σ unit."""
WITHIN_MIN = 0.95
"""A direction is reliable when its within-seed Spearman ρ reaches this …"""
POOLED_MIN = 0.9
"""… and its pooled ρ this."""


@dataclass(frozen=True)
class Measured:
    """Image measures of a batch: name → value per image; `periods` marks circular measures
    (name → period per image, e.g. 2π/k for an orientation)."""

    values: Mapping[str, F64]
    periods: Mapping[str, F64] = field(default_factory=dict)


EditImages = Callable[[str, Sequence[float], Sequence[str]], F32]
"""(direction, strengths, conditional_on) → images [bases, strengths, C, H, W]."""
MeasureImages = Callable[[F32], Measured]
"""images [n, C, H, W] (n = bases · strengths, base-major) → Measured."""


@dataclass(frozen=True)
class DirectionQuality:
    """How well one direction moves its measure, and what else it moves."""

    direction: str
    measure: str
    within: float
    """Mean over bases of Spearman ρ between strength and the measure (circular measures
    unwrapped along each sweep)."""
    pooled: float
    """Spearman ρ between strength and the change of the measure from each base's unedited
    image, pooled over all bases: does a strength mean the same change on every base?"""
    leak_measure: str
    """The other directions' measure this direction moves most in a plain edit (a measure no
    other direction names, such as a second measure of the same factor, is not leakage)."""
    leak_plain: float
    """Mean |change| of `leak_measure` over the sweep, in its spread over the bases."""
    leak_conditional: float
    """The same for the conditional edit (conditional_on every other named direction)."""

    @property
    def leak_ratio(self) -> float:
        """leak_conditional / leak_plain (0 when there is no plain leakage)."""
        return self.leak_conditional / self.leak_plain if self.leak_plain > 0 else 0.0

    @property
    def reliable(self) -> bool:
        """Within-seed ρ ≥ WITHIN_MIN and pooled ρ ≥ POOLED_MIN."""
        return self.within >= WITHIN_MIN and self.pooled >= POOLED_MIN

    def spec(self) -> DirectionQualitySpec:
        """The direction's `quality` entry in `latentserve.json` (rounded to 4 digits)."""
        return DirectionQualitySpec(
            measure=self.measure, spearman_within=round(self.within, 4),
            spearman_pooled=round(self.pooled, 4), leak_measure=self.leak_measure,
            leak_plain=round(self.leak_plain, 4),
            leak_conditional=round(self.leak_conditional, 4), reliable=self.reliable)

    def notes(self, sweep: str) -> dict[str, str]:
        """What each of `metrics()` is; `sweep` says where the edits started."""
        p = f"direction.{self.direction}."
        return {
            p + "spearman_within": f"mean per-seed Spearman ρ of strength vs the measure "
            f"{self.measure}; edits −3…3 σ (13 steps) from {sweep}",
            p + "spearman_pooled": f"Spearman ρ of strength vs the change of {self.measure} "
            "from each seed's unedited image, pooled over seeds",
            p + "leak_plain": f"mean |change| of {self.leak_measure}, the other directions' "
            "measure the plain edit moves most, in its spread over the seeds",
            p + "leak_conditional": "the same with conditional_on every other measured "
            "direction",
        }

    def metrics(self) -> dict[str, float]:
        """The bundle metrics of this direction (`direction.<name>.<what>`)."""
        p = f"direction.{self.direction}."
        return {
            p + "spearman_within": self.within,
            p + "spearman_pooled": self.pooled,
            p + "leak_plain": self.leak_plain,
            p + "leak_conditional": self.leak_conditional,
        }


def direction_quality(
    edit: EditImages,
    measure: MeasureImages,
    own_measure: Mapping[str, str],
    *,
    strengths: Sequence[float] = STRENGTHS,
) -> dict[str, DirectionQuality]:
    """Sweep every direction in `own_measure` (direction → the measure it names), plain and
    conditional on the others, and score it; leakage spreads come from the unedited bases."""
    names = list(own_measure)
    strengths = [float(s) for s in strengths]
    zero = int(np.argmin(np.abs(np.asarray(strengths))))
    out = {}
    for name in names:
        own = own_measure[name]
        others = [o for o in names if o != name]
        held = [o for o in others if own_measure[o] != own]   # same measure: not leakage
        plain = _sweep(edit, measure, name, strengths, [])
        conditional = _sweep(edit, measure, name, strengths, held) if held else plain
        within, pooled = _monotonicity(plain, own, strengths, zero)
        spreads = _spreads(plain, zero)
        others_measures = {own_measure[o] for o in others} - {own}
        leaks = {m: _leak(plain, m, zero, spreads[m]) for m in plain.values
                 if m in others_measures}  # fmt: skip
        worst = max(leaks, key=lambda m: leaks[m]) if leaks else own
        out[name] = DirectionQuality(
            name, own, within, pooled, worst, leaks.get(worst, 0.0),
            _leak(conditional, worst, zero, spreads[worst]) if leaks else 0.0,
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class _Sweep:
    values: dict[str, F64]
    """measure → [bases, strengths], circular measures unwrapped along each row."""
    circular: dict[str, F64]
    """circular measure → period per base."""


def _sweep(edit: EditImages, measure: MeasureImages, name: str, strengths: list[float],
           conditional_on: list[str]) -> _Sweep:  # fmt: skip
    images = np.asarray(edit(name, strengths, conditional_on), np.float32)
    bases, steps = images.shape[:2]
    measured = measure(images.reshape(bases * steps, *images.shape[2:]))
    values, circular = {}, {}
    for m, v in measured.values.items():
        grid = np.asarray(v, np.float64).reshape(bases, steps)
        if m in measured.periods:
            period = np.asarray(measured.periods[m], np.float64).reshape(bases, steps)[:, 0]
            grid = _unwrap(grid, period)
            circular[m] = period
        values[m] = grid
    return _Sweep(values, circular)


def _unwrap(grid: F64, period: F64) -> F64:
    """Unwrap each row of a circular measure (period per row) so steps are < period / 2."""
    out = grid.copy()
    for i, p in enumerate(period):
        row = out[i]
        ok = np.isfinite(row)
        if ok.sum() > 1:
            row[ok] = np.unwrap(row[ok] * (2 * math.pi / p)) * (p / (2 * math.pi))
    return out


def _monotonicity(sweep: _Sweep, own: str, strengths: list[float],
                  zero: int) -> tuple[float, float]:  # fmt: skip
    grid = sweep.values[own]
    s = np.asarray(strengths)
    rhos = [_spearman(s, row) for row in grid]
    delta = grid - grid[:, zero : zero + 1]
    pooled = _spearman(np.tile(s, len(grid)), delta.ravel())
    return float(np.mean(rhos)), pooled


def _spearman(a: F64, b: F64) -> float:
    ok = np.isfinite(b)
    if ok.sum() < 3 or np.ptp(b[ok]) == 0:
        return 0.0
    rho = spearman(a[ok], b[ok])
    return rho if math.isfinite(rho) else 0.0


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman's ρ of two equal-length samples (ties get average ranks); nan when either
    sample is constant."""
    ra, rb = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denominator if denominator > 0 else math.nan


def _ranks(x: F64) -> F64:
    """1-based ranks of x, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def _spreads(sweep: _Sweep, zero: int) -> dict[str, float]:
    """Each measure's spread over the unedited bases (circular: the std of a uniform angle)."""
    out = {}
    for m, grid in sweep.values.items():
        if m in sweep.circular:
            out[m] = float(np.mean(sweep.circular[m])) / math.sqrt(12.0)
        else:
            col = grid[:, zero]
            out[m] = float(np.nanstd(col)) if np.isfinite(col).sum() > 1 else 1.0
    return {m: max(v, 1e-9) for m, v in out.items()}


def _leak(sweep: _Sweep, m: str, zero: int, spread: float) -> float:
    grid = sweep.values[m]
    change = np.abs(grid - grid[:, zero : zero + 1]) / spread
    return float(np.nanmean(change)) if np.isfinite(change).any() else 0.0
