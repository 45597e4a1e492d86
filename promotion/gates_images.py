"""Promotion gates that look at the pictures: `image_drift`, `diversity`, and `fid`,
`precision`, `recall` against the user's reference images.

All decode with onnxruntime on this machine, the latents of Sample(seed, n) (untruncated;
mapped to W for two-stage generators) — the same latents for the candidate and the holder, so
a retrain that redraws every seed shows before it serves::

    image_drift_gate(candidate, holder, config.images)       # mean RMS change ≤ drift_max_rms
    diversity_gate(candidate, holder, config.images)
    reference_gates(candidate, holder, config.reference)     # [fid, precision, recall]

A model that cannot run makes its gate fail; a gate without what it needs (no holder, no
reference set) is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from latentserve.core.arrays import F32, F64
from latentserve.core.errors import LatentServeError
from latentserve.promotion.gates import GateResult, ImagesConfig, ReferenceConfig
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.quality import image_sets
from latentserve.registry.quality.onnx_generator import OnnxGenerator

DRIFT_KEY = "[images] items, seed, drift_max_rms"
DIVERSITY_KEY = "[images] items, seed, diversity_rel_tol, diversity_min"
_FAILURES = (LatentServeError, RuntimeError, ValueError, OSError)


def samples(bundle: Bundle, seed: int, n: int) -> F32:
    """Sample(seed, n) of a bundle (untruncated), as [0, 1] images."""
    gen = OnnxGenerator(bundle)
    z = gen.sample_latents(seed, n)
    labels = (np.arange(n, dtype=np.int64) % bundle.spec.num_classes
              if bundle.spec.condition is not None else None)
    return image_sets.to_unit(gen.decode(z, labels), bundle.spec.output.range)


def comparable(candidate: Bundle, holder: Bundle) -> str:
    """Why the two versions' images of one seed are not comparable ("" when they are)."""
    a, b = candidate.spec, holder.spec
    for what, mine, theirs in (("latent_dim", a.latent_dim, b.latent_dim),
                               ("latent shape", _shape(a), _shape(b)),
                               ("output shape", a.output.shape, b.output.shape),
                               ("classes", a.num_classes, b.num_classes)):
        if mine != theirs:
            return f"the {what} differs ({mine} vs the holder's {theirs})"
    return ""


def _shape(spec: object) -> tuple[int, ...]:
    return tuple(getattr(spec, "prior_shape", ()) or ())


def image_drift_gate(candidate: Bundle, holder: Bundle | None,
                     config: ImagesConfig) -> GateResult:
    """`image_drift`: mean per-item RMS change of Sample(seed, items) from the holder's images
    of the same seed, in units of the output range; passes at ≤ `drift_max_rms`."""
    name = "image_drift"
    if holder is None:
        return GateResult(name, None, "no holder", "nothing to compare the pictures with",
                          DRIFT_KEY)
    why = comparable(candidate, holder)
    if why:
        return GateResult(name, None, "not comparable", f"same seeds, different models: {why}",
                          DRIFT_KEY)
    try:
        mine = samples(candidate, config.seed, config.items)
        theirs = samples(holder, config.seed, config.items)
    except _FAILURES as exc:
        return GateResult(name, False, "error", _describe(exc), DRIFT_KEY)
    per_item = image_sets.drift(mine, theirs)
    mean, worst = float(per_item.mean()), float(per_item.max())
    moved = int(np.sum(per_item > config.drift_max_rms))
    return GateResult(name, mean <= config.drift_max_rms, f"{mean:.4g}",
                      f"mean RMS change of {config.items} samples (seed {config.seed}) from the "
                      f"holder's, output range = 1: {mean:.4g} (worst {worst:.4g}; {moved} "
                      f"items over {config.drift_max_rms:g}); allowed ≤ "
                      f"{config.drift_max_rms:g}", DRIFT_KEY)


def diversity_gate(candidate: Bundle, holder: Bundle | None,
                   config: ImagesConfig) -> GateResult:
    """`diversity`: mean RMS distance between the candidate's samples; at least the holder's
    × (1 − diversity_rel_tol), or `diversity_min` without a holder (a collapsed generator
    draws the same picture for every seed)."""
    name = "diversity"
    try:
        mine = image_sets.diversity(samples(candidate, config.seed, config.items))
        theirs = (None if holder is None
                  else image_sets.diversity(samples(holder, config.seed, config.items)))
    except _FAILURES as exc:
        return GateResult(name, False, "error", _describe(exc), DIVERSITY_KEY)
    what = f"mean pairwise RMS distance of {config.items} samples (output range = 1)"
    if theirs is None:
        return GateResult(name, mine >= config.diversity_min, f"{mine:.4g}",
                          f"{what}; no holder: absolute minimum {config.diversity_min:g}",
                          DIVERSITY_KEY)
    bound = theirs * (1.0 - config.diversity_rel_tol)
    return GateResult(name, mine >= bound, f"{mine:.4g}",
                      f"{what}; holder {theirs:.4g}; allowed ≥ {bound:.4g} (diversity_rel_tol "
                      f"{config.diversity_rel_tol:g})", DIVERSITY_KEY)


@dataclass(frozen=True)
class Fidelity:
    """Fréchet distance and precision/recall of one version against the reference set."""

    fid: float
    precision: float
    recall: float


def fidelity(bundle: Bundle, net: image_sets.FeatureNetwork, real: F64,
             config: ReferenceConfig) -> Fidelity:
    """The bundle's samples scored against the reference features."""
    fake = net.features(samples(bundle, config.seed, config.samples))
    precision, recall = image_sets.precision_recall(real, fake, k=config.k)
    return Fidelity(image_sets.frechet_distance(real, fake), precision, recall)


def reference_gates(candidate: Bundle, holder: Bundle | None,
                    config: ReferenceConfig) -> list[GateResult]:
    """`fid`, `precision`, `recall` against `[reference] images` over the features of
    `[reference] features`: vs the holder's own scores (fid ≤ holder × (1 + fid_rel_tol),
    precision/recall ≥ holder − pr_abs_tol), else the absolute `max_fid`, `min_precision`,
    `min_recall` (unset: recorded only)."""
    names = ("fid", "precision", "recall")
    keys = {"fid": "[reference] images, features, samples, fid_rel_tol, max_fid",
            "precision": "[reference] images, features, samples, k, pr_abs_tol, min_precision",
            "recall": "[reference] images, features, samples, k, pr_abs_tol, min_recall"}
    if config.images is None or config.features is None:
        return [GateResult(n, None, "not configured", "no [reference] images and features in "
                           "the gates file", keys[n]) for n in names]
    try:
        net = image_sets.FeatureNetwork(config.features, input_name=config.input,
                                        output_name=config.output,
                                        input_range=config.input_range)
        real = net.features(image_sets.load_image_folder(config.images, limit=config.samples))
        mine = fidelity(candidate, net, real, config)
        theirs = None if holder is None else fidelity(holder, net, real, config)
    except _FAILURES as exc:
        return [GateResult(n, False, "error", _describe(exc), keys[n]) for n in names]
    setup = (f"{config.samples} samples vs {len(real)} reference images "
             f"({config.images}), features of {config.features.name}")
    out = [_compare("fid", mine.fid, None if theirs is None else theirs.fid, "lower",
                    lambda held: held * (1.0 + config.fid_rel_tol), config.max_fid, setup)]
    for n, value, held in (("precision", mine.precision,
                            None if theirs is None else theirs.precision),
                           ("recall", mine.recall, None if theirs is None else theirs.recall)):
        floor = config.min_precision if n == "precision" else config.min_recall
        out.append(_compare(n, value, held, "higher",
                            lambda h: h - config.pr_abs_tol, floor, f"{setup}, k = {config.k}"))
    return [GateResult(g.name, g.passed, g.value, g.detail, keys[g.name]) for g in out]


def _compare(name: str, value: float, held: float | None, better: str,
             bound_of: Callable[[float], float], absolute: float | None,
             setup: str) -> GateResult:
    sign = "≤" if better == "lower" else "≥"
    if held is not None:
        bound = float(bound_of(held))
        ok = value <= bound if better == "lower" else value >= bound
        return GateResult(name, ok, f"{value:.4g}", f"{setup}; holder {held:.4g}; allowed "
                          f"{sign} {bound:.4g}")
    if absolute is None:
        return GateResult(name, None, f"{value:.4g}", f"{setup}; no holder and no absolute "
                          "bound: recorded only")
    ok = value <= absolute if better == "lower" else value >= absolute
    return GateResult(name, ok, f"{value:.4g}", f"{setup}; no holder; absolute bound {sign} "
                      f"{absolute:g}")


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(text).strip().splitlines()[0][:300]}"
