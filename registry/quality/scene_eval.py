"""How a class-conditional generator of rendered scenes does, judged on its images by
measures that share nothing with it (the caller's `ImageMeasures`: the shipped generators'
sprite and scene measures): direction quality, Encode → Decode of real renders, prior holes,
continuity, and whether the condition draws the class it names. Example::

    gen = OnnxGenerator(load_bundle(Path("generators/zoo/sprites-vae")))
    result = evaluate_generator(gen, SPRITE_MEASURES, real_renders, SceneEvalSizes())
    result.metrics["prior_holes"], result.quality["scale"].reliable
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from latentserve.core.arrays import F32, F64, I64
from latentserve.registry.bundle.spec import DirectionQualitySpec
from latentserve.registry.quality.evaluate import Evaluation, edit_labels, path_step_ratios
from latentserve.registry.quality.latent_eval import (
    STRENGTHS,
    DirectionQuality,
    Measured,
    direction_quality,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator

EDIT_SEEDS: tuple[int, ...] = tuple(range(1, 37))
"""Bases of the quality sweeps: item 0 of Sample(seed) for these seeds, class = seed mod C."""


@dataclass(frozen=True)
class SceneEvalSizes:
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
    """Encode → Decode of real renders: class kept (`roundtrip_class_accuracy`, and
    `roundtrip_class_accuracy_worst` for the class kept least often) and the mean error of each
    roundtrip measure (`roundtrip_<measure>_error_<unit>`, circular-aware)."""
    before, after = measures.measure(images, labels), measures.measure(back, labels)
    kept = measures.classify(back) == labels
    out = {"roundtrip_class_accuracy": float(np.mean(kept)),
           "roundtrip_class_accuracy_worst": min(float(np.mean(kept[labels == c]))
                                                 for c in np.unique(labels))}  # fmt: skip
    for name, (unit, factor) in measures.roundtrip.items():
        diff = np.abs(after.values[name] - before.values[name])
        if name in before.periods:
            period = before.periods[name]
            diff = np.minimum(np.mod(diff, period), period - np.mod(diff, period))
        out[f"roundtrip_{name}_error_{unit}"] = float(np.nanmean(diff) * factor)
    return out


def evaluate_generator(gen: OnnxGenerator, measures: ImageMeasures,
                       real_renders: Callable[[int, int], tuple[F32, I64, F64]],
                       sizes: SceneEvalSizes) -> Evaluation:  # fmt: skip
    """Direction quality, Encode → Decode of real renders, prior holes, condition accuracy
    and continuity of a class-conditional generator, with notes that say what each is."""
    classes = gen.spec.num_classes
    seeds = list(range(1, sizes.edit_seeds + 1))
    labels = edit_labels(classes, seeds)
    quality = quality_of(gen.edit, gen.seed_latents(seeds), labels, measures)
    images, real_labels, _ = real_renders(sizes.roundtrip_renders, 4)
    back = gen.decode(gen.encode(images, real_labels), real_labels)
    result = Evaluation(metrics=roundtrip_errors(images, back, real_labels, measures))
    prior = gen.sample_latents(0, sizes.prior_samples)
    prior_labels = np.arange(sizes.prior_samples, dtype=np.int64) % classes
    drawn = gen.decode(prior, prior_labels)
    presence = measures.measure(drawn, prior_labels).values[measures.presence]
    floor = measures.presence_floor()
    result.metrics["prior_holes"] = float(np.mean(presence < HOLE_TOLERANCE * floor))
    result.metrics["condition_accuracy"] = float(np.mean(measures.classify(drawn)
                                                         == prior_labels))
    result.notes = {
        "roundtrip_class_accuracy": f"Encode → Decode of {sizes.roundtrip_renders} real grid "
        "renders (true class "
        "given): share whose decoded class the render-trained classifier names correctly",
        "roundtrip_class_accuracy_worst": "the same share for the class kept least often",
        "prior_holes": f"share of {sizes.prior_samples:,} prior samples (ψ = 1, Sample(seed 0), "
        f"labels cycling) whose {measures.presence} is below {HOLE_TOLERANCE:g} × that of the "
        f"smallest real render ({floor:.4g})",
        "condition_accuracy": "share of those samples whose class the render-trained "
        "classifier names as the label asked for",
    }
    ratios = path_step_ratios(gen, ("lerp", "slerp"), pairs=sizes.path_pairs)
    result.metrics |= ratios.metrics
    result.notes |= ratios.notes
    circular = measures.measure(images[:1], real_labels[:1]).periods
    for name, (unit, _) in measures.roundtrip.items():
        result.notes[f"roundtrip_{name}_error_{unit}"] = (
            f"mean |{name} of the render − {name} of its Encode → Decode| ({unit}"
            f"{', circular' if name in circular else ''})"
        )
    result.add_quality(quality, len(seeds), conditional=True)
    return result


def describe(intro: str, quality: Mapping[str, DirectionQualitySpec]) -> str:
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
