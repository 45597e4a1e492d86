"""The directions of `digits-cvae`: one per pixel measure, each held apart from the others, and
the PCA/SeFa directions that earn a place. Example::

    named = held_apart(z_post, images, labels, seed=0)    # thickness, slant, pos_x, … held apart
    kept, dropped = select_unsupervised(gen, candidates, named)

A measure's ridge normal (InterFaceGAN) is the latent direction that best predicts it, and in
the digits that also predicts what correlates with it: within a class, a digit that leans right
sits higher (ρ −0.6 between slant and pos_y), so the slant normal also moves the digit
vertically. Each named direction is therefore its normal made orthogonal to the normals of the
other measures (InterFaceGAN's conditional manipulation applied at fitting time): moving along
it leaves the linear predictions of the other measures unchanged.

PCA and SeFa directions are kept only when they reliably move a measure that no named
direction already moves reliably, move that measure more than any other, and duplicate no kept
direction (|cos| < DUPLICATE_COS); a kept one is renamed `<measure>_<pcN|sefaN>` after the
measure it moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from latentserve.core.arrays import F32, F64, I64
from latentserve.core.latent_ops import orthogonalize
from latentserve.generators.digits import minus_class_mean
from latentserve.generators.digits_measures import MEASURES, digit_measured
from latentserve.registry.quality.direction_fits import Discovered, sigma_along, supervised
from latentserve.registry.quality.latent_eval import (
    POOLED_MIN,
    STRENGTHS,
    WITHIN_MIN,
    spearman,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator

MEANING = {
    "thickness": "thicker strokes (more ink)",
    "slant": "top leans further right",
    "pos_x": "digit moves right (centre of mass)",
    "pos_y": "digit moves down (centre of mass)",
    "width": "wider digit (ink extent across columns)",
    "height": "taller digit (ink extent across rows)",
}
DUPLICATE_COS = 0.8
"""Two directions with |cos| at least this are duplicates: the later one is dropped."""
PLAIN_SUFFIX = "_plain_normal"
"""Suffix of the plain ridge normals measured (never shipped) to show what holding changes."""


def ridge_normals(z_post: F32, images: F32, labels: I64, seed: int) -> dict[str, Discovered]:
    """Each measure's plain ridge normal (penalty 1) on posterior samples, the measure taken
    minus its class mean (the label carries the class, z the style)."""
    values = digit_measured(images, labels).values
    targets = {name: minus_class_mean(values[name], labels) for name in MEASURES}
    found = supervised(z_post, targets, seed=seed, penalty=1.0,
                       what="posterior samples of encoded digits")  # fmt: skip
    return {d.name: d for d in found}


def held_apart(z_post: F32, images: F32, labels: I64, seed: int) -> list[Discovered]:
    """One direction per measure: its ridge normal made orthogonal to the other measures'
    normals; σ is the posterior samples' spread along it; score = the normal's held-out R²."""
    normals = ridge_normals(z_post, images, labels, seed)
    z = np.asarray(z_post, np.float64)
    out = []
    for name in MEASURES:
        others = [m for m in MEASURES if m != name]
        vector = orthogonalize(normals[name].vector, [normals[m].vector for m in others])
        unit = np.asarray(vector, np.float64)
        cos = float(unit @ normals[name].vector)
        sigma = sigma_along(z, unit)
        out.append(replace(
            normals[name], vector=unit.astype(np.float32), sigma=sigma, factor=name,
            unit=(f"1.0 = 1 σ of posterior samples of encoded digits along the direction "
                  f"(σ = {sigma:.4g} latent units): the ridge normal of {name} (measured on "
                  f"the image minus its class mean) made orthogonal to the normals of "
                  f"{', '.join(others)} (cos {cos:.2f} with the plain normal), so their linear "
                  f"predictions stay put; positive = {MEANING[name]}")))  # fmt: skip
    return out


def plain_normals(z_post: F32, images: F32, labels: I64, seed: int,
                  names: Sequence[str]) -> list[Discovered]:  # fmt: skip
    """The plain ridge normals of `names`, renamed `<name>PLAIN_SUFFIX` (for measurement)."""
    normals = ridge_normals(z_post, images, labels, seed)
    return [replace(normals[n], name=n + PLAIN_SUFFIX, factor=None) for n in names]


@dataclass(frozen=True)
class Sweep:
    """What one direction's plain −3…3 σ edit does to every measure, over bases."""

    within: dict[str, float]
    """measure → mean per-base Spearman ρ of strength vs the measure."""
    pooled: dict[str, float]
    """measure → ρ of strength vs the change from each base's unedited image, pooled."""
    moved: dict[str, float]
    """measure → mean |change| over the sweep, in the measure's spread over the bases."""

    def reliable_on(self, measure: str) -> bool:
        """Does the sweep move `measure` as a shipped direction must (either sign)?"""
        sign = 1.0 if self.within[measure] >= 0 else -1.0
        return (sign * self.within[measure] >= WITHIN_MIN
                and sign * self.pooled[measure] >= POOLED_MIN)  # fmt: skip

    def moves_up(self, measure: str) -> bool:
        """Does a positive edit raise `measure` as a shipped direction must?"""
        return self.within[measure] >= WITHIN_MIN and self.pooled[measure] >= POOLED_MIN

    def best(self) -> str:
        """The measure moved most monotonically (largest |within-base ρ|)."""
        return max(self.within, key=lambda m: abs(self.within[m]))


def sweep(gen: OnnxGenerator, direction: str, bases: F32, labels: I64) -> Sweep:
    """Plain edit of `direction` from `bases` (class `labels`), measured on the images."""
    strengths = list(STRENGTHS)
    zero = int(np.argmin(np.abs(np.asarray(strengths))))
    images = gen.edit(bases, labels, direction, strengths)
    b, s = images.shape[:2]
    values = digit_measured(images.reshape(b * s, *images.shape[2:]), labels).values
    within, pooled, moved = {}, {}, {}
    for name in MEASURES:
        grid = np.asarray(values[name], np.float64).reshape(b, s)
        delta = grid - grid[:, zero : zero + 1]
        within[name] = float(np.mean([_rho(strengths, row) for row in grid]))
        pooled[name] = _rho(list(np.tile(strengths, b)), delta.ravel())
        spread = max(float(np.std(grid[:, zero])), 1e-9)
        moved[name] = float(np.mean(np.abs(delta))) / spread
    return Sweep(within, pooled, moved)


def _rho(a: Sequence[float], b: F64) -> float:
    if np.ptp(b) == 0:
        return 0.0
    r = spearman(a, b)
    return r if np.isfinite(r) else 0.0


def select_unsupervised(gen: OnnxGenerator, candidates: Sequence[Discovered],
                        named: Sequence[Discovered], bases: F32, labels: I64,
                        reliable_named: Mapping[str, bool],
                        ) -> tuple[list[Discovered], dict[str, str]]:  # fmt: skip
    """The PCA/SeFa candidates worth shipping, renamed after what they move, and why each
    other one was dropped (name → reason). `reliable_named`: measure → whether its named
    direction is reliable."""
    kept: list[Discovered] = []
    dropped: dict[str, str] = {}
    taken = {m for m, ok in reliable_named.items() if ok}
    for cand in candidates:
        twin = _duplicate_of(cand, [*named, *kept])
        if twin is not None:
            dropped[cand.name] = f"duplicates {twin.name} (|cos| ≥ {DUPLICATE_COS})"
            continue
        result = sweep(gen, cand.name, bases, labels)
        reliable = [m for m in MEASURES if result.reliable_on(m)]
        if not reliable:
            best = result.best()
            dropped[cand.name] = (f"moves no measure reliably (best {best}, within-seed ρ "
                                  f"{result.within[best]:+.2f}, pooled "
                                  f"{result.pooled[best]:+.2f})")  # fmt: skip
            continue
        free = [m for m in reliable if m not in taken]
        if not free:
            dropped[cand.name] = (f"moves only {', '.join(reliable)}, each already controlled "
                                  "by its own held-apart direction")  # fmt: skip
            continue
        measure = max(free, key=lambda m: abs(result.within[m]))
        most = max(result.moved, key=lambda m: result.moved[m])
        if most != measure:
            dropped[cand.name] = (f"moves {most} more than {measure} ({result.moved[most]:.2f} "
                                  f"vs {result.moved[measure]:.2f} of their spreads): a mix, "
                                  f"not a {measure} control")  # fmt: skip
            continue
        vector = cand.vector if result.within[measure] > 0 else -cand.vector
        kept.append(replace(cand, name=f"{measure}_{cand.name}", vector=vector, factor=measure,
                            unit=cand.unit + f"; renamed after what it moves: positive = "
                            f"{MEANING[measure]}"))  # fmt: skip
        taken.add(measure)
    return kept, dropped


def _duplicate_of(cand: Discovered, others: Sequence[Discovered]) -> Discovered | None:
    for other in others:
        cos = float(np.dot(cand.vector, other.vector)
                    / (np.linalg.norm(cand.vector) * np.linalg.norm(other.vector)))  # fmt: skip
        if abs(cos) >= DUPLICATE_COS:
            return other
    return None
