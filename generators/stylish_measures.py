"""Image measures of stylish-shapes images, computed from pixels only (no model): geometry
(area, centroid, orientation from second moments, squareness from the profile along the long
axis) and appearance (object hue, background hue, stripe cycles). Example::

    m = measure_shapes(images)           # images float [n, 3, 64, 64] in [0, 1]
    m["area"], m["orientation"], m["object_hue"]

The background is read from the 4-pixel border (the object never reaches it); a pixel's
object share is its RGB distance from that colour relative to the object's contrast (the
smallest object–background distance the data set draws is ≈ 0.55).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F64
from latentserve.generators.shapes3d_measures import circular_mean, rgb_to_hsv
from latentserve.generators.stylish_data import IMAGE_SIZE, STRIPE_AMPLITUDE
from latentserve.registry.quality.latent_eval import Measured

BORDER = 4
OBJECT_CONTRAST = 0.4
"""RGB distance from the background at which a pixel counts as wholly object."""
GEOMETRY_MEASURES: tuple[str, ...] = ("size", "pos_x", "pos_y", "orientation", "squareness")
APPEARANCE_MEASURES: tuple[str, ...] = ("object_hue", "background_hue", "stripes")
PERIODS: dict[str, float] = {"orientation": 180.0, "object_hue": 1.0, "background_hue": 1.0}
"""Circular measures and their periods (degrees; turns)."""
RESOLUTION: dict[str, float] = {"size": 0.3, "pos_x": 0.2, "pos_y": 0.2, "orientation": 0.5,
                                "squareness": 0.01}
"""Smallest change of a geometry measure that counts as a change: about twice the change a
whole hue turn or stripe sweep makes on the exact renders (90th percentile over seeds: size
0.15 px, position 0.1 px, orientation 0.1°, squareness 0.004), where antialiased edge pixels
weigh a little differently under different colours."""
MEASURE_OF: dict[str, str] = {
    "shape": "squareness", "scale": "size", "orientation": "orientation", "pos_x": "pos_x",
    "pos_y": "pos_y", "object_hue": "object_hue", "background_hue": "background_hue",
    "stripes": "stripes",
}  # fmt: skip
"""Factor (direction) → the measure it should move."""


def _as_images(images: npt.ArrayLike) -> F64:
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images: expected [n, 3, {IMAGE_SIZE}, {IMAGE_SIZE}], got {x.shape}")
    return np.clip(x, 0.0, 1.0)


def background_colour(x: F64) -> F64:
    """Median RGB of the border frame [n, 3]."""
    frame = np.ones((IMAGE_SIZE, IMAGE_SIZE), bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    return np.asarray(np.median(x[:, :, frame], axis=2), np.float64)


def object_share(x: F64) -> F64:
    """Per-pixel object share [n, H, W] in [0, 1]: RGB distance from the background over half
    the image's object contrast (its 99th-percentile distance, at least OBJECT_CONTRAST), so
    the share of an edge pixel does not grow with the colours' contrast."""
    bg = background_colour(x)
    dist = np.sqrt(((x - bg[:, :, None, None]) ** 2).sum(axis=1))
    contrast = np.maximum(np.percentile(dist.reshape(len(x), -1), 99, axis=1), OBJECT_CONTRAST)
    return np.asarray(np.clip(dist / (0.5 * contrast[:, None, None]), 0.0, 1.0), np.float64)


def measure_shapes(images: npt.ArrayLike) -> dict[str, F64]:
    """size (√ object area, px), pos_x, pos_y (centroid offset from the centre, px),
    orientation (degrees of the long axis, [0, 180)), squareness (3 − the kurtosis of the
    object's profile along its long axis: 0.6 for a diamond, 1 for an ellipse, ≈ 1.2 near a
    rectangle), object_hue and background_hue (turns), stripes (cycles along the long axis,
    from the mean brightness gradient inside the object)."""
    x = _as_images(images)
    n = len(x)
    m = object_share(x)
    h, s, v = rgb_to_hsv(x)
    grid = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5 - IMAGE_SIZE / 2
    xs = np.broadcast_to(grid[None, None, :], m.shape)
    ys = np.broadcast_to(grid[None, :, None], m.shape)
    area = np.maximum(m.sum(axis=(1, 2)), 1e-6)
    cx = (m * xs).sum(axis=(1, 2)) / area
    cy = (m * ys).sum(axis=(1, 2)) / area
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    sxx = (m * dx * dx).sum(axis=(1, 2)) / area
    syy = (m * dy * dy).sum(axis=(1, 2)) / area
    sxy = (m * dx * dy).sum(axis=(1, 2)) / area
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = dx * cos + dy * sin
    var_u = np.maximum((m * u * u).sum(axis=(1, 2)) / area, 1e-9)
    kurt = (m * u**4).sum(axis=(1, 2)) / area / var_u**2
    inside = m > 0.999
    inner = inside[:, 1:-1, 1:-1] & inside[:, :-2, 1:-1] & inside[:, 2:, 1:-1] \
        & inside[:, 1:-1, :-2] & inside[:, 1:-1, 2:]
    gx = (v[:, 1:-1, 2:] - v[:, 1:-1, :-2]) / 2
    gy = (v[:, 2:, 1:-1] - v[:, :-2, 1:-1]) / 2
    along = np.abs(gx * cos + gy * sin)
    grad = (along * inner).sum(axis=(1, 2)) / np.maximum(inner.sum(axis=(1, 2)), 1)
    length = 4.0 * np.sqrt(var_u)  # 2a for an ellipse
    bg_frame = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE))
    bg_frame[:, :BORDER] = bg_frame[:, -BORDER:] = 1.0
    bg_frame[:, :, :BORDER] = bg_frame[:, :, -BORDER:] = 1.0
    return {
        "size": np.sqrt(area),
        "pos_x": cx,
        "pos_y": cy,
        "orientation": np.mod(np.degrees(theta), 180.0),
        "squareness": 3.0 - kurt,
        "object_hue": circular_mean(h, m**2 * s + 1e-12),
        "background_hue": circular_mean(h, bg_frame * s + 1e-12),
        "stripes": grad * length / (4.0 * STRIPE_AMPLITUDE),
    }


def shapes_measured(images: npt.ArrayLike) -> Measured:
    """`measure_shapes` with its circular measures marked (for direction quality)."""
    values = measure_shapes(images)
    n = len(values["size"])
    return Measured(values, {k: np.full(n, p) for k, p in PERIODS.items()})


def circular_diff(a: npt.ArrayLike, b: npt.ArrayLike, period: float) -> F64:
    """Signed smallest difference a − b on a circle of `period`."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.asarray(np.mod(d + period / 2, period) - period / 2, np.float64)
