"""Image measures of sprites, computed from pixels only (no model): ink mass, centroid,
orientation (mod the shape's rotational symmetry) and a shape classifier fitted on renders.

They judge a sprite generator from its images, so they share nothing with its networks.
Example::

    m = measure_sprites(images, shape=labels)       # images float [n, 1, 64, 64] in [0, 1]
    m["ink"], m["pos_x"], m["orientation"]          # float64 [n] each
    sprite_shape_classifier().predict(images)       # int64 [n] shape indices
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.render_classifier import RenderClassifier
from latentserve.generators.sprites import (
    IMAGE_SIZE,
    SHAPES,
    SYMMETRY_ORDER,
    factor_values,
    render,
    render_indices,
    sample_factor_indices,
)
from latentserve.registry.quality.latent_eval import Measured
from latentserve.registry.quality.scene_eval import RADIANS_TO_DEGREES, ImageMeasures

_SPAN = 32.0
"""Pixels between sprite centres at pos 0 and pos 1 (renderer geometry: 64 − 2 · 16)."""
_MARGIN = 16.0
_CLASSIFIER_SEED = 11
"""The classifier's training renders come from this seed (a draw of the factor grid)."""

_y, _x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64) + 0.5


def _as_images(images: npt.ArrayLike) -> F64:
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images: expected [n, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {x.shape}")
    return np.clip(x[:, 0], 0.0, 1.0)


def _moments(w: F64) -> tuple[F64, F64, F64, F64]:
    """(ink, centroid x, centroid y, complex offsets from the centroid, y pointing up)."""
    ink = w.sum(axis=(1, 2))
    safe = np.maximum(ink, 1e-9)
    cx = (w * _x).sum(axis=(1, 2)) / safe
    cy = (w * _y).sum(axis=(1, 2)) / safe
    return ink, cx, cy, (_x[None] - cx[:, None, None]) - 1j * (_y[None] - cy[:, None, None])


def _angular(w: F64, offsets: F64, k: int, power: int) -> F64:
    """Σ w |r|^(power − k) r^k: the k-fold angular moment (a complex number per image)."""
    r = np.abs(offsets)
    return np.asarray((w * r ** (power - k) * offsets**k).sum(axis=(1, 2)))


_ORIENTATION_MOMENT = {"square": (4, 4), "ellipse": (2, 2), "heart": (1, 2)}
"""shape → (k, power): the angular moment whose phase gives the orientation mod 2π/k."""


@functools.cache
def _orientation_offsets() -> dict[str, float]:
    """Phase of each shape's moment at orientation 0, measured on a large upright render."""
    out = {}
    for name in SHAPES:
        img = render(shape=[name], scale=[1.0], orientation=[0.0], pos_x=[0.5], pos_y=[0.5])
        w = _as_images(img)
        _, _, _, off = _moments(w)
        k, power = _ORIENTATION_MOMENT[name]
        out[name] = float(np.angle(_angular(w, off, k, power))[0])
    return out


def measure_sprites(images: npt.ArrayLike, shape: npt.ArrayLike | None = None) -> dict[str, F64]:
    """ink (sum of pixel values), pos_x / pos_y (centroid in the renderer's position units:
    0 … 1 for the centre's range) and orientation (radians counter-clockwise in [0, 2π/k),
    k = the rotational symmetry of each item's shape; `shape` gives the shape indices, else
    the shape classifier decides). NaN where an image has no ink."""
    w = _as_images(images)
    ink, cx, cy, off = _moments(w)
    shapes = (sprite_shape_classifier().predict(images) if shape is None
              else np.asarray(shape, np.int64))  # fmt: skip
    if shapes.shape != (len(w),):
        raise ValueError(f"shape: expected {len(w)} shape indices, got shape {shapes.shape}")
    angle = np.full(len(w), np.nan)
    offsets = _orientation_offsets()
    for i, name in enumerate(SHAPES):
        sel = shapes == i
        if not sel.any():
            continue
        k, power = _ORIENTATION_MOMENT[name]
        phase = np.angle(_angular(w[sel], off[sel], k, power)) - offsets[name]
        angle[sel] = np.mod(phase, 2.0 * np.pi) / k
    empty = ink < 1e-6
    result = {
        "ink": ink,
        "pos_x": (cx - _MARGIN) / _SPAN,
        "pos_y": (cy - _MARGIN) / _SPAN,
        "orientation": angle,
    }
    for name in ("pos_x", "pos_y", "orientation"):
        result[name][empty] = np.nan
    return result


def orientation_period(shape: npt.ArrayLike) -> F64:
    """2π/k per item: the period of the orientation measure for each shape index."""
    k = np.array([SYMMETRY_ORDER[s] for s in SHAPES], np.float64)
    return np.asarray(2.0 * np.pi / k[np.asarray(shape, np.int64)], np.float64)


def angle_error(a: npt.ArrayLike, b: npt.ArrayLike, period: npt.ArrayLike) -> F64:
    """|a − b| on a circle of the given period (radians), in [0, period / 2]."""
    p = np.asarray(period, np.float64)
    d = np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64), p)
    return np.asarray(np.minimum(d, p - d), np.float64)


def shape_features(images: npt.ArrayLike) -> F64:
    """Rotation-, scale- and position-invariant features [n, 6]: magnitudes of the 1…4-fold
    angular moments relative to the radial moment, and compactness (1 for a disc)."""
    w = _as_images(images)
    ink, _, _, off = _moments(w)
    r2 = (w * np.abs(off) ** 2).sum(axis=(1, 2))
    base3 = np.maximum((w * np.abs(off) ** 3).sum(axis=(1, 2)), 1e-9)
    base4 = np.maximum((w * np.abs(off) ** 4).sum(axis=(1, 2)), 1e-9)
    feats = [
        np.abs(_angular(w, off, 1, 3)) / base3,
        np.abs(_angular(w, off, 2, 2)) / np.maximum(r2, 1e-9),
        np.abs(_angular(w, off, 3, 3)) / base3,
        np.abs(_angular(w, off, 4, 4)) / base4,
        ink**2 / np.maximum(2.0 * math.pi * r2, 1e-9),
        base4 * ink / np.maximum(r2**2, 1e-9),
    ]
    return np.stack(feats, axis=1)


@functools.cache
def sprite_shape_classifier() -> RenderClassifier:
    """Which shape a sprite is (SHAPES index), fitted once per process on grid renders."""

    def draw(n: int, stream: int) -> tuple[F32, I64]:
        idx = sample_factor_indices(n, _CLASSIFIER_SEED, stream=stream)
        return render_indices(idx), idx[:, 0]

    return RenderClassifier.fit(shape_features, draw)


def sprite_measured(images: npt.ArrayLike, shapes: I64) -> Measured:
    """Measures of sprites whose shapes are known (orientation is circular, period 2π/k)."""
    values = measure_sprites(images, shape=shapes)
    return Measured(values, {"orientation": orientation_period(shapes)})


@functools.cache
def smallest_real_ink() -> float:
    """Ink of the smallest real render: every shape at scale 0.5, 40 orientations."""
    theta = factor_values("orientation")
    n = len(theta)
    inks = [
        float(measure_sprites(render(shape=[s] * n, scale=[0.5] * n, orientation=theta,
                                     pos_x=[0.5] * n, pos_y=[0.5] * n), shape=[i] * n)["ink"].min())
        for i, s in enumerate(SHAPES)
    ]  # fmt: skip
    return min(inks)


SPRITE_MEASURES = ImageMeasures(
    measure=sprite_measured,
    classify=lambda images: sprite_shape_classifier().predict(images),
    measure_of={"scale": "ink", "orientation": "orientation", "pos_x": "pos_x", "pos_y": "pos_y"},
    presence="ink",
    presence_floor=smallest_real_ink,
    roundtrip={
        "orientation": ("deg", RADIANS_TO_DEGREES),
        "pos_x": ("pos", 1.0),
        "pos_y": ("pos", 1.0),
        "ink": ("px", 1.0),
    },
)
"""How sprites generators are judged: scale moves ink, orientation the k-fold angle, pos_x and
pos_y the centroid."""
