"""Latent-quality metrics for any bundle, measured on its ONNX files with onnxruntime — the
numbers `latentserve registry register` records and the promotion gates compare:

- `onnx_determinism_max_abs_diff`: one batch vs the same latents one at a time and again
  (no torch module here: the ONNX file must at least agree with itself);
  `output_finite_fraction`: share of finite values over the decoded prior samples;
- continuity `path_max_step_ratio_lerp/_slerp` (largest over mean frame step along paths),
  `path_length_lerp/_slerp` (PPL-style, image-space MSE / ε²) and the latent-only
  `lerp/slerp_midpoint_norm_ratio`, as the shipped generators record them; a two-stage
  generator is sampled as the service samples it (seeded z mapped to W) and its paths are
  lerps in W (StyleGAN's convention, the service's default there), so it records only the
  `_lerp` path metrics and no midpoint norms (those describe the N(0, I) prior's shell);
- with image measures (a callable images → {name: values}, or fitted from labels): each
  direction's monotonicity (Spearman within seed / pooled) and leakage, as
  `direction.<name>.*` metrics and the direction's `quality`. Example::

    result = evaluate_bundle(load_bundle(Path("out/my-vae")), measures=my_measures)
    record_metrics(bundle.root, result.metrics, notes=result.notes, quality=result.quality)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64, I64
from latentserve.core.latent_ops import Method
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import BundleError, DirectionQualitySpec
from latentserve.registry.quality import latent_metrics
from latentserve.registry.quality.latent_eval import (
    STRENGTHS,
    DirectionQuality,
    Measured,
    direction_quality,
    spearman,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator

Measures = Callable[[F32], Mapping[str, npt.ArrayLike]]
"""images [n, C, H, W] (in the bundle's output range) → {measure name: values [n]}."""


@dataclass(frozen=True)
class EvalSizes:
    """How much an evaluation decodes."""

    determinism_items: int = 16
    finite_samples: int = 512
    path_pairs: int = 48
    path_samples: int = 500
    path_eps: float = 1e-3
    midpoint_pairs: int = 1000
    edit_seeds: int = 24


@dataclass
class Evaluation:
    """Metrics with their notes, and quality per direction that had a measure."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    quality: dict[str, DirectionQualitySpec] = field(default_factory=dict)
    flips: dict[str, str] = field(default_factory=dict)
    """Directions measured with ρ < 0, to negate so + increases their measure (name →
    measure); the quality above is as measured, before the flip."""
    assigned: dict[str, str] = field(default_factory=dict)
    """Directions with no measure of their own, matched to the measure they move most
    (name → measure; `match_measures`)."""

    def add_quality(self, quality: Mapping[str, DirectionQuality], seeds: int, *,
                    conditional: bool) -> None:
        """Record measured direction quality from sweeps that started at item 0 of
        Sample(seed) for seeds 1 … `seeds` (class = seed mod C when `conditional`)."""
        sweep = (f"{seeds} seeds (Sample item 0 of seeds 1…{seeds}"
                 f"{', class = seed mod C' if conditional else ''})")
        for name, q in quality.items():
            self.metrics |= q.metrics()
            self.quality[name] = q.spec()
            self.notes |= q.notes(sweep)
            if q.within < 0:
                self.flips[name] = q.measure
                key = f"direction.{name}.sign_flipped"
                self.metrics[key] = 1.0
                self.notes[key] = (f"bundle evaluate negated {name} (ρ {q.within:.3g} as "
                                   f"found) so that + increases {q.measure}; the "
                                   "direction.*.spearman_* metrics are of the negated "
                                   "direction")


def edit_labels(num_classes: int, seeds: Sequence[int]) -> I64:
    """The class of each base in the quality sweeps: seed mod C (every class alike)."""
    return np.asarray(seeds, np.int64) % num_classes


def path_step_ratios(gen: OnnxGenerator, methods: Sequence[Method], *,
                     pairs: int) -> Evaluation:
    """Continuity `path_max_step_ratio_<method>` of a generator with its notes: pair i drawn
    with class i mod C; a two-stage generator's keyframes are mapped to W (as the service
    does) and the path runs there."""
    classes = max(gen.spec.num_classes, 1)
    two_stage = gen.spec.mapping is not None
    space = "W (seeded z mapped to w)" if two_stage else "the prior"
    out = Evaluation()
    for method in methods:
        out.metrics[f"path_max_step_ratio_{method}"] = latent_metrics.path_max_step_ratio(
            lambda z, item: gen.decode(z, item % classes), gen.latent_dim, method, pairs=pairs,
            to_editing=gen.to_editing_space if two_stage else None)
    out.notes["path_max_step_ratio_lerp"] = (
        f"continuity: mean over {pairs} seed pairs of the largest image step over the mean step "
        f"along a {latent_metrics.PATH_STEPS}-frame lerp path in {space} (RMS pixel distance "
        "between frames; 1 = even steps, a jump shows as a large ratio)")
    if "slerp" in methods:
        out.notes["path_max_step_ratio_slerp"] = "as path_max_step_ratio_lerp, along slerp paths"
    return out


def evaluate_bundle(bundle: Bundle, *, measures: Measures | None = None,
                    measure_of: Mapping[str, str] | None = None,
                    sizes: EvalSizes = EvalSizes(),
                    match_measures: bool = False) -> Evaluation:
    """Measure `bundle`. With `measures`, each direction is scored on the measure
    `measure_of[name]`, else the one named like its `factor`, else like itself; with
    `match_measures`, a direction with none of those is scored on the measure it moves most
    (mean |within-seed ρ| ≥ MATCH_MIN). Directions measured with ρ < 0 are listed in
    `Evaluation.flips` (`record_evaluation` negates them)."""
    gen = OnnxGenerator(bundle)
    spec = bundle.spec
    classes = max(spec.num_classes, 1)
    result = Evaluation()

    def decode(z: F32, item: I64) -> F64:
        return gen.decode(z, item % classes).astype(np.float64)

    z = gen.sample_latents(0, sizes.determinism_items)
    items = np.arange(len(z), dtype=np.int64)
    batch = decode(z, items)
    single = np.concatenate([decode(z[i : i + 1], items[i : i + 1]) for i in range(len(z))])
    again = decode(z, items)
    result.metrics["onnx_determinism_max_abs_diff"] = float(
        max(np.max(np.abs(batch - single)), np.max(np.abs(batch - again))))
    result.notes["onnx_determinism_max_abs_diff"] = (
        f"max |difference| between {len(z)} prior samples (Sample seed 0) decoded as one "
        "batch, one at a time "
        "and again with onnxruntime (no torch module: the ONNX file checked against itself)")
    prior = gen.sample_latents(1, sizes.finite_samples)
    drawn = decode(prior, np.arange(len(prior), dtype=np.int64))
    result.metrics["output_finite_fraction"] = float(np.mean(np.isfinite(drawn)))
    result.notes["output_finite_fraction"] = (
        f"share of finite values over {sizes.finite_samples} decoded prior samples "
        "(Sample seed 1)")

    two_stage = spec.mapping is not None
    to_editing = gen.to_editing_space if two_stage else None
    space = "W (seeded z mapped to w)" if two_stage else "the prior"
    methods: tuple[Literal["lerp", "slerp"], ...] = ("lerp",) if two_stage else ("lerp", "slerp")
    ratios = path_step_ratios(gen, methods, pairs=sizes.path_pairs)
    result.metrics |= ratios.metrics
    result.notes |= ratios.notes
    for method in methods:
        result.metrics[f"path_length_{method}"] = latent_metrics.path_length(
            decode, spec.latent_dim, method, samples=sizes.path_samples, eps=sizes.path_eps,
            to_editing=to_editing)
    result.notes["path_length_lerp"] = (
        f"PPL-style: mean of MSE(g(z(t)), g(z(t+ε))) / ε², ε = {sizes.path_eps:g}, over "
        f"{sizes.path_samples} random pairs of {space} and t ~ U(0, 1), lerp, values outside "
        "the 1st–99th percentile dropped; image-space MSE; decoder run by onnxruntime in "
        "float32")
    if two_stage:
        return _with_directions(gen, measures, measure_of, sizes, result, match_measures)
    result.notes["path_length_slerp"] = "as path_length_lerp, along slerp paths"
    result.metrics |= latent_metrics.midpoint_norm_ratios(spec.latent_dim,
                                                          pairs=sizes.midpoint_pairs)
    for name in ("lerp_midpoint_norm_ratio", "slerp_midpoint_norm_ratio"):
        result.notes[name] = latent_metrics.METRIC_NOTES[name].replace(
            "1,000", f"{sizes.midpoint_pairs:,}")
    return _with_directions(gen, measures, measure_of, sizes, result, match_measures)


def _with_directions(gen: OnnxGenerator, measures: Measures | None,
                     measure_of: Mapping[str, str] | None, sizes: EvalSizes,
                     result: Evaluation, match: bool) -> Evaluation:
    if measures is not None:
        _directions(gen, measures, dict(measure_of or {}), sizes, result, match)
    return result


MATCH_MIN = 0.8
"""A direction is matched to a measure when its mean within-seed |ρ| reaches this."""


def _best_measure(edit: Callable[[str, Sequence[float], Sequence[str]], F32],
                  measures: Measures,
                  direction: str) -> tuple[str, float] | None:
    """The measure a direction moves most monotonically (mean within-seed |ρ|), if any
    reaches MATCH_MIN."""
    strengths = list(STRENGTHS)
    images = edit(direction, strengths, ())
    bases, steps = images.shape[:2]
    measured = _measure(measures, images.reshape(bases * steps, *images.shape[2:]))
    scores = {}
    for name, values in measured.values.items():
        grid = values.reshape(bases, steps)
        rhos = [spearman(strengths, row) for row in grid if np.ptp(row) > 0]
        scores[name] = abs(float(np.mean(rhos))) if rhos else 0.0
    if not scores:
        return None
    best = max(scores, key=lambda m: scores[m])
    return (best, scores[best]) if scores[best] >= MATCH_MIN else None


def _directions(gen: OnnxGenerator, measures: Measures, measure_of: dict[str, str],
                sizes: EvalSizes, result: Evaluation, match: bool) -> None:
    spec = gen.spec
    seeds = list(range(1, sizes.edit_seeds + 1))
    bases = gen.seed_latents(seeds)
    labels = edit_labels(spec.num_classes, seeds) if spec.condition else None
    probe = _measure(measures, gen.decode(bases[:2], None if labels is None else labels[:2]))
    unknown = sorted(set(measure_of) - set(gen.bundle.directions))
    if unknown:
        raise BundleError(f"measure_of: the bundle has no direction {unknown[0]!r}")
    own: dict[str, str] = {}
    for d in spec.directions:
        wanted = measure_of.get(d.name) or next(
            (m for m in (d.factor, d.name) if m is not None and m in probe.values), None)
        if wanted is None:
            continue
        if wanted not in probe.values:
            raise BundleError(f"measure_of: {d.name}={wanted}: the measures give "
                              f"{sorted(probe.values)}")
        own[d.name] = wanted

    def edit(direction: str, strengths: Sequence[float], conditional_on: Sequence[str]) -> F32:
        try:
            return gen.edit(bases, labels, direction, list(strengths), list(conditional_on))
        except ValueError as exc:   # held directions spanning this one
            raise BundleError(f"directions: {direction} cannot be edited conditional on "
                              f"{', '.join(conditional_on)} ({exc}); remove duplicates "
                              "first: `latentserve directions dedupe`") from None

    if match:
        for d in spec.directions:
            if d.name not in own:
                best = _best_measure(edit, measures, d.name)
                if best is not None:
                    own[d.name] = result.assigned[d.name] = best[0]
    if not own:
        return

    quality = direction_quality(edit, lambda images: _measure(measures, images), own)
    result.add_quality(quality, len(seeds), conditional=labels is not None)


def _measure(measures: Measures, images: F32) -> Measured:
    try:
        raw = measures(images)
    except Exception as exc:  # the user's code: report, don't crash
        raise BundleError(f"measures: the measure function failed ({type(exc).__name__}: "
                          f"{exc})") from None
    if not isinstance(raw, Mapping) or not raw:
        raise BundleError("measures: the measure function must return a non-empty dict "
                          "{name: values [n]}")
    values: dict[str, F64] = {}
    for name, v in raw.items():
        a = np.asarray(v, np.float64)
        if a.shape != (len(images),):
            raise BundleError(f"measures: {name!r} has shape {list(a.shape)} for "
                              f"{len(images)} images; expected [{len(images)}]")
        values[str(name)] = a
    return Measured(values)


def label_measures(images: F32, columns: Mapping[str, F64], *, ridge: float = 1e-2) -> Measures:
    """Image measures fitted from labelled images: per label, ridge regression from pixels to
    the label (solved in the dual, so any image size works with a few thousand items)."""
    x = images.reshape(len(images), -1).astype(np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    gram = xc @ xc.T
    gram += ridge * float(np.trace(gram)) / len(x) * np.eye(len(x))
    weights = {}
    for name, y in columns.items():
        alpha = np.linalg.solve(gram, y - y.mean())
        weights[name] = (xc.T @ alpha, float(y.mean()))

    def measure(batch: F32) -> dict[str, F64]:
        flat = batch.reshape(len(batch), -1).astype(np.float64) - mean
        return {name: flat @ w + b for name, (w, b) in weights.items()}

    return measure


def record_evaluation(root: Path, result: Evaluation, *, name_after_measure: bool = False
                      ) -> dict[str, str]:
    """Write an evaluation into the bundle at `root`: metrics, notes and quality; matched
    measures become the directions' `factor`; directions measured with ρ < 0 are negated
    (quality and metrics follow); with `name_after_measure`, each measured direction is
    renamed after its measure when that name is free. Returns the renames (old → new)."""
    from latentserve.registry.bundle.update import record_metrics
    from latentserve.registry.quality import direction_edits

    record_metrics(root, result.metrics, notes=result.notes, quality=result.quality)
    if result.assigned:
        direction_edits.set_factors(root, result.assigned)
    if result.flips:
        direction_edits.flip(root, list(result.flips), why={
            name: f"bundle evaluate, so that + increases {measure}"
            for name, measure in result.flips.items()})
    renames: dict[str, str] = {}
    if name_after_measure:
        taken = {d.name for d in load_bundle(root).spec.directions}
        for name, q in result.quality.items():
            if q.measure != name and q.measure not in taken:
                direction_edits.rename(root, name, q.measure)
                taken = (taken - {name}) | {q.measure}
                renames[name] = q.measure
    return renames
