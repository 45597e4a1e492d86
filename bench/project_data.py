"""Targets for the projection benchmark: (a) generated images, (b) pictures the model never
produced — renders of the data spec, sprites and Shapes3D-spec scenes drawn by routines of
our own (PIL polygons: a rotated square, an ellipse, the standard parametric heart curve;
banded walls, floors and objects), real sklearn digits.
Images are in [0, 1] whatever the model's output range.

Example::

    images, labels = other_sprites(50, seed=3)     # float32 [50, 1, 64, 64], labels [50]
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from latentserve.core.arrays import F32, I64
from latentserve.generators.shapes3d import (
    CAPSULE_RADIUS,
    CUBE_SIDE,
    GROUND,
    HORIZON,
    ORIENTATION_RANGE,
    SCALE_RANGE,
    capsule_half_length,
    corner_column,
    cube_corners,
)

_SIZE = 64
_SUPER = 4
STYLISH_EVAL_TAG = 0xE7A1
"""Stylish-shapes evaluation latents come from SeedSequence([stream, STYLISH_EVAL_TAG]);
training draws its own from SeedSequence([seed, 0x57]) (`stylish_training.fit_stylish`)."""


def _heart(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The parametric heart x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t,
    scaled to a half extent of about 1 and centred."""
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return x / 17.0, (y + 2.5) / 15.5


def _outline(shape: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    if shape == 0:
        return np.array([-0.8, 0.8, 0.8, -0.8]), np.array([-0.8, -0.8, 0.8, 0.8])
    if shape == 1:
        return np.cos(t), 0.5 * np.sin(t)
    return _heart(t)


def other_sprites(n: int, seed: int) -> tuple[F32, I64]:
    """`n` sprites drawn with PIL polygons (4× supersampled), uniform shape, scale in
    [0.5, 1], angle, position in the data's frame; images [n, 1, 64, 64] in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, _SIZE, _SIZE), np.float32)
    labels = rng.integers(0, 3, n)
    for i in range(n):
        u, v = _outline(int(labels[i]))
        extent = 10.0 * rng.uniform(0.5, 1.0)
        theta = rng.uniform(0, 2 * np.pi)
        cx, cy = 16 + 32 * rng.uniform(0, 1, 2)
        x = cx + extent * (np.cos(theta) * u - np.sin(theta) * v)
        y = cy - extent * (np.sin(theta) * u + np.cos(theta) * v)
        canvas = Image.new("L", (_SIZE * _SUPER, _SIZE * _SUPER), 0)
        ImageDraw.Draw(canvas).polygon(
            [(float(a) * _SUPER, float(b) * _SUPER) for a, b in zip(x, y, strict=True)],
            fill=255)
        small = canvas.resize((_SIZE, _SIZE), Image.Resampling.BOX)
        images[i, 0] = np.asarray(small, np.float32) / 255.0
    return images, labels.astype(np.int64)


def other_scenes(n: int, seed: int) -> tuple[F32, I64]:
    """`n` Shapes3D-spec scenes drawn with PIL (4× supersampled), not by the training
    renderer: flat bands of colour for the walls and the floor's gradient, the object as
    polygons and ellipses shaded by a light of its own (cube faces 1.0 / 0.78 / 0.56,
    banded cylinders and capsules, a sphere of concentric discs). Factors uniform in the
    spec's ranges; images [n, 3, 64, 64] in [0, 1], labels = shapes3d.SHAPES index."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5CE]))
    labels = rng.integers(0, 4, n)
    images = np.zeros((n, 3, _SIZE, _SIZE), np.float32)
    draw_object = (_cube, _cylinder, _sphere, _capsule)
    for i in range(n):
        floor_hue, wall_hue, hue = rng.uniform(0, 1, 3)
        size = 16.0 * rng.uniform(*SCALE_RANGE)
        turn = rng.uniform(*ORIENTATION_RANGE)
        canvas = Image.new("RGB", (_SIZE * _SUPER, _SIZE * _SUPER))
        draw = ImageDraw.Draw(canvas)
        _room(draw, floor_hue, wall_hue, turn, size)
        draw_object[int(labels[i])](draw, hue, turn, size)
        small = canvas.resize((_SIZE, _SIZE), Image.Resampling.BOX)
        images[i] = np.asarray(small, np.float32).transpose(2, 0, 1) / 255.0
    return images, labels.astype(np.int64)


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _room(draw: ImageDraw.ImageDraw, floor_hue: float, wall_hue: float, turn: float,
          size: float) -> None:  # fmt: skip
    """Two walls meeting at the corner the turn puts, a floor lit nearer the camera, and the
    object's contact shadow."""
    k, cx = float(_SUPER), _SIZE / 2 * _SUPER
    corner = float(corner_column(np.array([turn]))[0]) * k
    draw.rectangle([0, 0, corner, HORIZON * k], fill=_rgb(wall_hue, 0.55, 0.92))
    draw.rectangle([corner, 0, _SIZE * k, HORIZON * k], fill=_rgb(wall_hue, 0.55, 0.7))
    for row in range(int(HORIZON * k), _SIZE * _SUPER):
        depth = (row / k - HORIZON) / (_SIZE - HORIZON)
        draw.line([(0, row), (_SIZE * k, row)], fill=_rgb(floor_hue, 0.55, 0.6 + 0.3 * depth))
    draw.ellipse([cx - 0.7 * size * k, (GROUND - 2.5) * k, cx + 0.7 * size * k,
                  (GROUND + 2.5) * k], fill=_rgb(floor_hue, 0.55, 0.62))  # fmt: skip


def _cube(draw: ImageDraw.ImageDraw, hue: float, turn: float, size: float) -> None:
    """The spec's cube corners, its three visible faces flat-filled."""
    c = cube_corners(np.array([turn]), np.array([CUBE_SIDE * size]))[0] * _SUPER
    for face, v in (([4, 5, 6, 7], 1.0), ([0, 3, 7, 4], 0.78), ([3, 2, 6, 7], 0.56)):
        draw.polygon([tuple(c[j]) for j in face], fill=_rgb(hue, 0.95, v))


def _cylinder(draw: ImageDraw.ImageDraw, hue: float, turn: float, size: float) -> None:
    """An upright body of 12 vertical bands darkening to the right, and a light lid."""
    k, cx, half, top = float(_SUPER), _SIZE / 2 * _SUPER, size / 2, GROUND - size
    for b in range(_BANDS):
        x0 = cx + (-half + 2 * half * b / _BANDS) * k
        x1 = cx + (-half + 2 * half * (b + 1) / _BANDS) * k
        draw.rectangle([x0, top * k, x1, GROUND * k],
                       fill=_rgb(hue, 0.95, 0.95 - 0.4 * b / _BANDS))  # fmt: skip
    draw.ellipse([cx - half * k, (top - 0.25 * size) * k, cx + half * k,
                  (top + 0.25 * size) * k], fill=_rgb(hue, 0.95, 1.0))  # fmt: skip


def _sphere(draw: ImageDraw.ImageDraw, hue: float, turn: float, size: float) -> None:
    """Ten discs shrinking towards a highlight up and to the left."""
    k, cx, r = float(_SUPER), _SIZE / 2 * _SUPER, size / 2
    cy = GROUND - r
    for b in range(10):
        f = 1.0 - b / 10
        ox, oy = -0.35 * r * (1 - f), -0.35 * r * (1 - f)
        draw.ellipse([cx + (ox - f * r) * k, (cy + oy - f * r) * k,
                      cx + (ox + f * r) * k, (cy + oy + f * r) * k],
                     fill=_rgb(hue, 0.95, 0.5 + 0.5 * (1 - f)))  # fmt: skip


def _capsule(draw: ImageDraw.ImageDraw, hue: float, turn: float, size: float) -> None:
    """A lying capsule as rounded rectangles, lit from above: bands darken inwards from the
    top; its length follows the turn."""
    k, cx = float(_SUPER), _SIZE / 2 * _SUPER
    half = size * float(capsule_half_length(np.array([turn]))[0])
    height = 2 * CAPSULE_RADIUS * size
    top = GROUND - height
    for b in range(_BANDS):
        inset = height * b / (2 * _BANDS)
        draw.rounded_rectangle([cx - half * k, (top + inset) * k, cx + half * k, GROUND * k],
                               radius=height / 2 * k,
                               fill=_rgb(hue, 0.95, 1.0 - 0.45 * b / _BANDS))  # fmt: skip


_BANDS = 12


def data_spec_renders(model: str, n: int, stream: int) -> tuple[F32, I64]:
    """Renders of the model's data spec (the training renderer, an evaluation stream)."""
    if model == "stylish-shapes":
        return stylish_renders(n, stream)
    if model == "sprites-vae":
        from latentserve.generators.sprites_vae import real_renders
    elif model == "shapes3d":
        from latentserve.generators.shapes3d_generator import real_renders
    else:
        raise ValueError(model)
    images, labels, _ = real_renders(n, stream)
    return images.astype(np.float32), labels.astype(np.int64)


def stylish_renders(n: int, stream: int) -> tuple[F32, I64]:
    """`n` stylish-shapes renders (unmixed: every factor from one latent) of prior latents
    from an evaluation stream training never drew; images [n, 3, 64, 64], labels 0 (the
    model is unconditional)."""
    from latentserve.generators.stylish_data import LATENT_DIM, render_latents

    rng = np.random.default_rng(np.random.SeedSequence([stream, STYLISH_EVAL_TAG]))
    images = render_latents(rng.standard_normal((n, LATENT_DIM)))
    return images.astype(np.float32), np.zeros(n, np.int64)


def real_digits(n: int, seed: int) -> tuple[F32, I64]:
    """`n` held-out sklearn digits (the test split), 32×32 as the model was trained."""
    from latentserve.generators.digits import load_digit_images

    data = load_digit_images()
    pick = np.random.default_rng(seed).choice(len(data.test_labels), n, replace=False)
    return data.test_images[pick].astype(np.float32), data.test_labels[pick].astype(np.int64)


def never_produced(model: str, n: int, seed: int) -> tuple[F32, I64, str]:
    """Set (b) for `model`: images, labels and what they are."""
    if model == "digits-cvae":
        images, labels = real_digits(n, seed)
        return images, labels, f"{n} real sklearn digits (test split)"
    if model in DRAWN_BY_US:
        draw, what = DRAWN_BY_US[model]
        half = n // 2
        a, la = data_spec_renders(model, half, stream=seed)
        b, lb = draw(n - half, seed)
        return (np.concatenate([a, b]), np.concatenate([la, lb]),
                f"{half} data-spec renders + {n - half} {what}")  # fmt: skip
    images, labels = data_spec_renders(model, n, stream=seed)
    return images, labels, f"{n} data-spec renders"


def never_produced_parts(model: str, n: int) -> dict[str, slice]:
    """Where each kind of picture sits in `never_produced(model, n, …)`, for a model whose
    set mixes two (else {})."""
    if model not in DRAWN_BY_US:
        return {}
    return {"data-spec renders": slice(0, n // 2), DRAWN_BY_US[model][1]: slice(n // 2, n)}


DRAWN_BY_US = {"sprites-vae": (other_sprites, "PIL-polygon sprites (parametric heart)"),
               "shapes3d": (other_scenes, "PIL-drawn scenes")}  # fmt: skip
"""Models whose set (b) is half data-spec renders, half pictures drawn by a routine of ours."""
