"""Image measures of Shapes3D-spec scenes, computed from pixels only (no model): floor, wall
and object hue, object height (scale), the room corner's azimuth (orientation) and a shape
classifier fitted on renders. Example::

    m = measure_scenes(images)                # images float [n, 3, 64, 64] in [0, 1]
    m["object_hue"], m["height"], m["orientation"]
    scene_shape_classifier().predict(images)
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.render_classifier import RenderClassifier
from latentserve.generators.shapes3d import (
    CORNER_SWING,
    IMAGE_SIZE,
    OBJECT_SATURATION,
    SHAPES,
    WALL,
    render_indices,
    sample_factor_indices,
)
from latentserve.registry.quality.latent_eval import Measured
from latentserve.registry.quality.scene_eval import ImageMeasures

_WALL_ROWS = slice(0, 6)
"""Rows that always show the walls (the tallest object stays below row 29)."""
_FLOOR_ROWS = slice(59, 64)
"""Rows that always show the floor (below the object's base and its shadow)."""
_CLASSIFIER_SEED = 13


def _as_images(images: npt.ArrayLike) -> F64:
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images: expected [n, 3, {IMAGE_SIZE}, {IMAGE_SIZE}], got {x.shape}")
    return np.clip(x, 0.0, 1.0)


def rgb_to_hsv(x: F64) -> tuple[F64, F64, F64]:
    """RGB images [n, 3, H, W] → hue (turns, [0, 1)), saturation, value, each [n, H, W]."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.max(axis=1)
    c = v - x.min(axis=1)
    safe = np.where(c > 1e-9, c, 1.0)
    h = np.where(v == r, np.mod((g - b) / safe, 6.0),
                 np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))  # fmt: skip
    h = np.where(c > 1e-9, h / 6.0, 0.0)
    s = np.where(v > 1e-9, c / np.where(v > 1e-9, v, 1.0), 0.0)
    return h, s, v


def circular_mean(hue: F64, weight: F64) -> F64:
    """Weighted circular mean of hues (turns) over the last two axes → [n] in [0, 1)."""
    angle = 2.0 * np.pi * hue
    z = (weight * np.exp(1j * angle)).sum(axis=(-2, -1))
    return np.asarray(np.mod(np.angle(z) / (2.0 * np.pi), 1.0), np.float64)


def object_coverage(s: F64) -> F64:
    """Per-pixel share of the object (saturation between the room's and the object's)."""
    lo = WALL["saturation"]
    return np.clip((s - (lo + 0.05)) / (OBJECT_SATURATION - lo - 0.1), 0.0, 1.0)


def measure_scenes(images: npt.ArrayLike) -> dict[str, F64]:
    """floor_hue, wall_hue, object_hue (turns), size (√ of the object's area in pixels),
    height (its height in pixels) and orientation (degrees of azimuth from the room corner's
    column)."""
    x = _as_images(images)
    h, s, v = rgb_to_hsv(x)
    cover = object_coverage(s)
    wall_v = v[:, _WALL_ROWS]
    lit = np.clip((wall_v - WALL["right"]) / (WALL["left"] - WALL["right"]), 0.0, 1.0)
    corner = lit.sum(axis=2).mean(axis=1)
    return {
        "floor_hue": circular_mean(h[:, _FLOOR_ROWS], s[:, _FLOOR_ROWS]),
        "wall_hue": circular_mean(h[:, _WALL_ROWS], s[:, _WALL_ROWS]),
        "object_hue": circular_mean(h, cover**2 + 1e-9),
        "size": np.sqrt(cover.sum(axis=(1, 2))),
        "height": cover.max(axis=2).sum(axis=1),
        "orientation": (corner - IMAGE_SIZE / 2) / CORNER_SWING * 30.0,
    }


def scene_shape_features(images: npt.ArrayLike) -> F64:
    """Features of the object's silhouette and shading [n, 9]: height, width, fill, widths at
    four heights relative to the widest row, and the brightness spread across it."""
    x = _as_images(images)
    _, s, v = rgb_to_hsv(x)
    cover = object_coverage(s)
    rows = cover.sum(axis=2)  # width per row
    height = cover.max(axis=2).sum(axis=1)
    width = np.maximum(rows.max(axis=1), 1e-6)
    area = cover.sum(axis=(1, 2))
    occupied = cover.max(axis=2) > 0.5
    first = np.argmax(occupied, axis=1)
    last = IMAGE_SIZE - 1 - np.argmax(occupied[:, ::-1], axis=1)
    feats = [height, width, area / np.maximum(height * width, 1e-6)]
    for frac in (0.15, 0.35, 0.65, 0.9):
        at = np.clip(np.round(first + frac * (last - first)).astype(np.int64), 0, IMAGE_SIZE - 1)
        feats.append(rows[np.arange(len(rows)), at] / width)
    inside = cover > 0.9
    count = inside.sum(axis=1)
    col_mean = np.where(count > 0, (v * inside).sum(axis=1) / np.maximum(count, 1), np.nan)
    has = np.isfinite(col_mean)  # columns the object covers
    centred = np.where(has, col_mean - _masked_mean(col_mean, has)[:, None], 0.0)
    feats.append(np.sqrt((centred**2).sum(axis=1) / np.maximum(has.sum(axis=1), 1)))
    step = np.abs(np.diff(np.where(has, col_mean, 0.0), axis=1))
    both = has[:, 1:] & has[:, :-1]
    feats.append((step * both).sum(axis=1) / np.maximum(both.sum(axis=1), 1))
    return np.stack(feats, axis=1)


def _masked_mean(x: F64, mask: npt.NDArray[np.bool_]) -> F64:
    return np.asarray(np.where(mask, x, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1))


@functools.cache
def scene_shape_classifier() -> RenderClassifier:
    """Which object a scene shows (shapes3d.SHAPES index), fitted once per process on grid
    renders."""

    def draw(n: int, stream: int) -> tuple[F32, I64]:
        idx = sample_factor_indices(n, _CLASSIFIER_SEED, stream=stream)
        return render_indices(idx), idx[:, 4]

    return RenderClassifier.fit(scene_shape_features, draw)


def scene_measured(images: npt.ArrayLike, labels: I64) -> Measured:
    """Measures of scenes (hues are circular with period 1 turn); labels are not needed."""
    values = measure_scenes(images)
    ones = np.ones(len(values["height"]))
    return Measured(values, {"floor_hue": ones, "wall_hue": ones, "object_hue": ones})


@functools.cache
def smallest_real_size() -> float:
    """Size (√ area) of the smallest real object: every shape at the smallest scale."""
    idx = np.array([[0, 5, 3, 0, s, 7] for s in range(len(SHAPES))], np.int64)
    return float(measure_scenes(render_indices(idx))["size"].min())


SCENE_MEASURES = ImageMeasures(
    measure=scene_measured,
    classify=lambda images: scene_shape_classifier().predict(images),
    measure_of={
        "floor_hue": "floor_hue",
        "wall_hue": "wall_hue",
        "object_hue": "object_hue",
        "scale": "size",
        "orientation": "orientation",
    },
    presence="size",
    presence_floor=smallest_real_size,
    roundtrip={
        "floor_hue": ("deg", 360.0),
        "wall_hue": ("deg", 360.0),
        "object_hue": ("deg", 360.0),
        "size": ("px", 1.0),
        "height": ("px", 1.0),
        "orientation": ("deg", 1.0),
    },
)
"""How Shapes3D generators are judged: each hue moves its own region's hue, scale the
object's size (√ area: every pixel counts, where a height counts rows), orientation the room
corner's azimuth."""
