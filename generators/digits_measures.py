"""How `digits-cvae` is judged on its images: the pixel measures of `digits.py` as
`ImageMeasures` (direction quality, Encode → Decode, prior holes, condition accuracy), a digit
classifier fitted on the real training digits only, and the spread of samples against the real
test digits. Example::

    measures = digit_image_measures({"slant": "slant", "pos_y": "pos_y"})
    measures.measure(images, labels).values["width"]
    spread_ratios(samples, sample_labels, real, real_labels)   # {"thickness": 0.8, …}
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.digits import (
    IMAGE_SIZE,
    digit_measures,
    load_digit_images,
    minus_class_mean,
)
from latentserve.registry.quality.latent_eval import Measured
from latentserve.registry.quality.scene_eval import ImageMeasures

MEASURES: tuple[str, ...] = ("thickness", "slant", "pos_x", "pos_y", "width", "height")
ROUNDTRIP_UNITS: dict[str, tuple[str, float]] = {
    "thickness": ("ink", 1.0), "slant": ("shear", 1.0), "pos_x": ("px", 1.0),
    "pos_y": ("px", 1.0), "width": ("px", 1.0), "height": ("px", 1.0),
}  # fmt: skip
"""measure → (unit, factor) of its Encode → Decode error."""
_POOL = IMAGE_SIZE // 8


def _pooled(images: npt.ArrayLike) -> F64:
    """Images [n, 1, 32, 32] averaged back to the digits' own 8×8 grid, flattened [n, 64]."""
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images: expected [n, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {x.shape}")
    n = len(x)
    return np.asarray(x.reshape(n, 8, _POOL, 8, _POOL).mean(axis=(2, 4)).reshape(n, 64))


@functools.cache
def digit_classifier() -> tuple[Pipeline, float]:
    """Logistic regression on the 8×8 pixels of the real training digits, and its accuracy on
    the real test digits."""
    data = load_digit_images()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000))
    model.fit(_pooled(data.train_images), data.train_labels)
    accuracy = float(np.mean(model.predict(_pooled(data.test_images)) == data.test_labels))
    return model, accuracy


def classify_digits(images: npt.ArrayLike) -> I64:
    """Which digit each image [n, 1, 32, 32] shows, by `digit_classifier`."""
    return np.asarray(digit_classifier()[0].predict(_pooled(images)), np.int64)


def digit_measured(images: npt.ArrayLike, labels: I64) -> Measured:
    """`digit_measures` as `Measured` (none circular; labels are not needed)."""
    return Measured(digit_measures(images))


@functools.cache
def smallest_real_ink() -> float:
    """Thickness (mean ink) of the faintest real test digit."""
    return float(digit_measures(load_digit_images().test_images)["thickness"].min())


def digit_image_measures(measure_of: Mapping[str, str]) -> ImageMeasures:
    """The digits' `ImageMeasures`, scoring each direction on `measure_of[direction]`."""
    return ImageMeasures(
        measure=digit_measured,
        classify=classify_digits,
        measure_of=dict(measure_of),
        presence="thickness",
        presence_floor=smallest_real_ink,
        roundtrip=ROUNDTRIP_UNITS,
    )


def spread_ratios(samples: F32, sample_labels: I64, real: F32, real_labels: I64,
                  ) -> dict[str, float]:  # fmt: skip
    """Per measure: the standard deviation of (measure − its class mean) over `samples` divided
    by the same over the real digits (1 = samples vary as much within a class as real digits
    do, < 1 = less diverse)."""
    ours, theirs = digit_measures(samples), digit_measures(real)
    out = {}
    for name in MEASURES:
        s = float(np.std(minus_class_mean(ours[name], sample_labels)))
        r = float(np.std(minus_class_mean(theirs[name], real_labels)))
        out[name] = s / r if r > 0 else float("nan")
    return out
