"""How a class-conditional generator of rendered scenes does, judged on its images by
measures that share nothing with it: direction quality, Encode → Decode of real renders,
prior holes, and whether the condition draws the class it names. Example::

    gen = OnnxGenerator(load_bundle(Path("generators/zoo/sprites-vae")))
    quality, metrics, notes = evaluate_generator(gen, SPRITE_MEASURES, real_renders)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from latentserve.core.arrays import F32, F64, I64
from latentserve.core.latent_ops import Method
from latentserve.registry.quality import latent_metrics
from latentserve.registry.quality.latent_eval import (
    STRENGTHS,
    DirectionQuality,
    Measured,
    direction_quality,
)
from latentserve.registry.quality.latent_metrics import PATH_STEPS
from latentserve.registry.quality.onnx_generator import OnnxGenerator

EDIT_SEEDS: tuple[int, ...] = tuple(range(1, 37))
"""Bases of the quality sweeps: item 0 of Sample(seed) for these seeds, class = seed mod C."""


@dataclass(frozen=True)
class EvalSizes:
    """How much an evaluation looks at (the shipped bundles use the defaults)."""

    edit_seeds: int = len(EDIT_SEEDS)
    """Quality sweeps start from item 0 of Sample(seed) for seeds 1 … edit_seeds."""
    prior_samples: int = 3000
    """Sample(seed 0), ψ = 1, labels cycling: prior holes and condition accuracy."""
    roundtrip_renders: int = 600
    """Real grid renders for Encode → Decode."""
    path_pairs: int = 48
    """Seed pairs for continuity."""
HOLE_TOLERANCE = 0.9
"""A sample is a hole when its presence measure is below this × the smallest real render's."""

Edit = Callable[[F32, I64, str, Sequence[float], Sequence[str]], F32]
"""(bases, labels per base, direction, strengths, conditional_on) → images [B, S, C, H, W]."""
Evaluation = tuple[dict[str, DirectionQuality], dict[str, float], dict[str, str]]
"""(quality per named direction, metrics, metric notes)."""


@dataclass(frozen=True)
class ImageMeasures:
    """The image measures of one kind of scene and how a generator of them is judged."""

    measure: Callable[[F32, I64], Measured]
    """(images [n, C, H, W], class label per image) → measures (circular ones marked)."""
    classify: Callable[[F32], I64]
    """A classifier fitted on renders only: class index per image."""
    measure_of: Mapping[str, str]
    """Named direction → the measure it should move."""
    presence: str
    """The measure that shows an object is drawn (ink, height)."""
    presence_floor: Callable[[], float]
    """That measure on the smallest real render."""
    roundtrip: Mapping[str, tuple[str, float]]
    """measure → (unit, factor) of its Encode → Decode error (e.g. ("deg", 180/π))."""


def edit_labels(num_classes: int, seeds: Sequence[int] = EDIT_SEEDS) -> I64:
    """The class of each base in the quality sweeps: seed mod C (every class alike)."""
    return np.asarray(seeds, np.int64) % num_classes


def quality_of(edit: Edit, bases: F32, labels: I64, measures: ImageMeasures, *,
               strengths: Sequence[float] = STRENGTHS) -> dict[str, DirectionQuality]:  # fmt: skip
    """Quality of each named direction from the given bases (one class label per base)."""
    per_image = np.repeat(labels, len(strengths))
    return direction_quality(
        lambda d, s, c: edit(bases, labels, d, s, c),
        lambda images: measures.measure(images, per_image),
        measures.measure_of,
        strengths=strengths,
    )


def roundtrip_errors(images: F32, back: F32, labels: I64, measures: ImageMeasures,
                     ) -> dict[str, float]:  # fmt: skip
    """Encode → Decode of real renders: class kept (`roundtrip_class_accuracy`) and the mean
    error of each roundtrip measure (`roundtrip_<measure>_error_<unit>`, circular-aware)."""
    before, after = measures.measure(images, labels), measures.measure(back, labels)
    out = {"roundtrip_class_accuracy": float(np.mean(measures.classify(back) == labels))}
    for name, (unit, factor) in measures.roundtrip.items():
        diff = np.abs(after.values[name] - before.values[name])
        if name in before.periods:
            period = before.periods[name]
            diff = np.minimum(np.mod(diff, period), period - np.mod(diff, period))
        out[f"roundtrip_{name}_error_{unit}"] = float(np.nanmean(diff) * factor)
    return out


def evaluate_generator(gen: OnnxGenerator, measures: ImageMeasures,
                       real_renders: Callable[[int, int], tuple[F32, I64, F64]],
                       sizes: EvalSizes) -> Evaluation:  # fmt: skip
    """Direction quality, Encode → Decode of real renders, prior holes, condition accuracy
    and continuity of a class-conditional generator, with notes that say what each is."""
    classes = gen.spec.num_classes
    seeds = list(range(1, sizes.edit_seeds + 1))
    labels = edit_labels(classes, seeds)
    quality = quality_of(gen.edit, gen.seed_latents(seeds), labels, measures)
    images, real_labels, _ = real_renders(sizes.roundtrip_renders, 4)
    back = gen.decode(gen.encode(images, real_labels), real_labels)
    metrics = roundtrip_errors(images, back, real_labels, measures)
    prior = gen.sample_latents(0, sizes.prior_samples)
    prior_labels = np.arange(sizes.prior_samples, dtype=np.int64) % classes
    drawn = gen.decode(prior, prior_labels)
    presence = measures.measure(drawn, prior_labels).values[measures.presence]
    floor = measures.presence_floor()
    metrics["prior_holes"] = float(np.mean(presence < HOLE_TOLERANCE * floor))
    metrics["condition_accuracy"] = float(np.mean(measures.classify(drawn) == prior_labels))
    for method in ("lerp", "slerp"):
        metrics[f"path_max_step_ratio_{method}"] = path_max_step_ratio(gen, method,
                                                                      pairs=sizes.path_pairs)
    notes = {
        "roundtrip_class_accuracy": f"Encode → Decode of {sizes.roundtrip_renders} real grid "
        "renders (true class "
        "given): share whose decoded class the render-trained classifier names correctly",
        "prior_holes": f"share of {sizes.prior_samples:,} prior samples (ψ = 1, Sample(seed 0), "
        f"labels cycling) whose {measures.presence} is below {HOLE_TOLERANCE:g} × that of the "
        f"smallest real render ({floor:.4g})",
        "condition_accuracy": "share of those samples whose class the render-trained "
        "classifier names as the label asked for",
        "path_max_step_ratio_lerp": f"continuity: mean over {sizes.path_pairs} seed pairs of the "
        f"largest image step over the mean step along a {PATH_STEPS}-frame lerp path (RMS "
        "pixel distance between frames; 1 = even steps, a jump shows as a large ratio)",
        "path_max_step_ratio_slerp": "as path_max_step_ratio_lerp, along slerp paths",
    }
    circular = measures.measure(images[:1], real_labels[:1]).periods
    for name, (unit, _) in measures.roundtrip.items():
        notes[f"roundtrip_{name}_error_{unit}"] = (
            f"mean |{name} of the render − {name} of its Encode → Decode| ({unit}"
            f"{', circular' if name in circular else ''})"
        )
    for q in quality.values():
        notes |= quality_notes(q, len(seeds))
    return quality, metrics, notes


def path_max_step_ratio(gen: OnnxGenerator, method: Method, *, pairs: int,
                        steps: int = PATH_STEPS) -> float:  # fmt: skip
    """`latent_metrics.path_max_step_ratio` of a generator, pair i drawn with class i mod C."""
    classes = max(gen.spec.num_classes, 1)
    return latent_metrics.path_max_step_ratio(
        lambda z, item: gen.decode(z, item % classes), gen.latent_dim, method, pairs=pairs,
        steps=steps)


def quality_notes(q: DirectionQuality, seeds: int) -> dict[str, str]:
    """What each `direction.<name>.*` metric is."""
    p = f"direction.{q.direction}."
    sweep = (f"edits −3…3 σ (13 steps) from {seeds} seeds (Sample item 0 of seeds "
             f"1…{seeds}, class = seed mod C)")  # fmt: skip
    return {
        p + "spearman_within": f"mean per-seed Spearman ρ of strength vs the image measure "
        f"{q.measure}; {sweep}",
        p + "spearman_pooled": f"Spearman ρ of strength vs the change of {q.measure} from each "
        "seed's unedited image, pooled over seeds",
        p + "leak_plain": f"mean |change| of {q.leak_measure}, the other measure the plain edit "
        "moves most, in its spread over the seeds",
        p + "leak_conditional": "the same with conditional_on every other named direction",
    }


def describe(intro: str, quality: Mapping[str, DirectionQuality]) -> str:
    """A bundle description that claims only the directions measured reliable."""
    good = [n for n, q in quality.items() if q.reliable]
    bad = [n for n, q in quality.items() if not q.reliable]
    text = intro
    if good:
        text += f"; edit {', '.join(good)} (each measured on the images)"
    if bad:
        text += f"; unreliable: {', '.join(bad)}"
    return text + "."


RADIANS_TO_DEGREES = 180.0 / math.pi
