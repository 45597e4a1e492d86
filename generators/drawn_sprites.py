"""Sprites drawn the way other people draw them: PIL polygons of jittered outlines (a square
with uneven sides and rounded corners, an ellipse of uneven axes, the standard parametric heart
x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t with jittered coefficients), a
stroke that grows or shrinks the outline by up to about half a pixel, 1×, 2× or 4×
anti-aliasing, optional Gaussian blur, fainter ink and pixel noise.

The factors keep the data spec's meaning (`sprites`: half extent 10 px × scale, angle
counter-clockwise, the centre at 16 + 32 · pos), so each drawing is paired with the factors it
was drawn from: what the sprites-vae encoder refit trains on. Example::

    rng = np.random.default_rng(0)
    images = draw_sprites(np.array([2]), np.array([0.8]), np.array([0.3]),
                          np.array([0.5]), np.array([0.5]), rng)   # float32 [1, 1, 64, 64]
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from latentserve.core.arrays import F32, F64, I64

SIZE = 64
HALF_EXTENT = 10.0
"""Half size of a sprite at scale 1, in pixels (as the data spec's renderer)."""
_MARGIN = 16.0
_SPAN = 32.0
_POINTS = 160


def _jitter(rng: np.random.Generator, amount: float) -> float:
    return 1.0 + float(rng.uniform(-amount, amount))


def _square(rng: np.random.Generator) -> tuple[F64, F64]:
    """A square of half side 0.8 (sides ±6 %), corners rounded by up to 0.15 half of the time."""
    hx, hy = 0.8 * _jitter(rng, 0.06), 0.8 * _jitter(rng, 0.06)
    radius = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.5 else 0.0
    if radius == 0.0:
        return np.array([-hx, hx, hx, -hx]), np.array([-hy, -hy, hy, hy])
    t = np.linspace(0.0, np.pi / 2, 12)
    us, vs = [], []
    for cx, cy, start in ((hx, hy, 0.0), (-hx, hy, np.pi / 2), (-hx, -hy, np.pi),
                          (hx, -hy, 1.5 * np.pi)):  # fmt: skip
        us.append(cx - np.sign(cx) * radius + radius * np.cos(start + t))
        vs.append(cy - np.sign(cy) * radius + radius * np.sin(start + t))
    return np.concatenate(us), np.concatenate(vs)


def _ellipse(rng: np.random.Generator) -> tuple[F64, F64]:
    """Semi-axes 1 and 0.5, each ±6 %."""
    t = np.linspace(0.0, 2.0 * np.pi, _POINTS, endpoint=False)
    return _jitter(rng, 0.06) * np.cos(t), 0.5 * _jitter(rng, 0.06) * np.sin(t)


def _heart(rng: np.random.Generator) -> tuple[F64, F64]:
    """The parametric heart with each coefficient ±12 %, its bounding box centred, half height
    0.98 (±5 %) and width ±6 % (tip down at angle 0, as in the data spec)."""
    t = np.linspace(0.0, 2.0 * np.pi, _POINTS, endpoint=False)
    a, b, c, d, e = (k * _jitter(rng, 0.12) for k in (16.0, 13.0, 5.0, 2.0, 1.0))
    x = a * np.sin(t) ** 3
    y = b * np.cos(t) - c * np.cos(2 * t) - d * np.cos(3 * t) - e * np.cos(4 * t)
    x = x - (x.max() + x.min()) / 2
    y = y - (y.max() + y.min()) / 2
    size = 0.98 * _jitter(rng, 0.05) / (y.max() - y.min()) * 2.0
    return x * size * _jitter(rng, 0.06), y * size


_OUTLINES = (_square, _ellipse, _heart)


def draw_one(shape: int, scale: float, angle: float, pos_x: float, pos_y: float,
             rng: np.random.Generator) -> F32:  # fmt: skip
    """One drawn sprite [64, 64] in [0, 1] (the style drawn from `rng`)."""
    u, v = _OUTLINES[shape](rng)
    extent = HALF_EXTENT * scale
    cx, cy = _MARGIN + _SPAN * pos_x, _MARGIN + _SPAN * pos_y
    cos, sin = np.cos(angle), np.sin(angle)
    x = cx + extent * (cos * u - sin * v)
    y = cy - extent * (sin * u + cos * v)
    sup = int(rng.choice([1, 2, 4], p=[0.2, 0.2, 0.6]))
    stroke = float(rng.uniform(-0.5, 0.6))
    width = round(2.0 * abs(stroke) * sup)
    canvas = Image.new("L", (SIZE * sup, SIZE * sup), 0)
    draw = ImageDraw.Draw(canvas)
    points = [(float(a) * sup, float(b) * sup) for a, b in zip(x, y, strict=True)]
    draw.polygon(points, fill=255)
    if width > 0:
        draw.line([*points, points[0]], fill=255 if stroke > 0 else 0, width=width,
                  joint="curve")  # fmt: skip
    small = canvas.resize((SIZE, SIZE), Image.Resampling.BOX) if sup > 1 else canvas
    if rng.random() < 0.35:
        small = small.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    out = np.asarray(small, np.float32) / 255.0
    if rng.random() < 0.3:
        out = out * float(rng.uniform(0.85, 1.0))
    if rng.random() < 0.2:
        out = out + rng.normal(0.0, 0.02, out.shape).astype(np.float32)
    clipped: F32 = np.clip(out, 0.0, 1.0).astype(np.float32)
    return clipped


def draw_sprites(shape: I64, scale: F64, angle: F64, pos_x: F64, pos_y: F64,
                 rng: np.random.Generator) -> F32:  # fmt: skip
    """Drawn sprites [n, 1, 64, 64] of factor values (scale in [0.5, 1], angle in radians,
    positions in [0, 1]); one style per sprite, drawn from `rng` in order."""
    n = len(shape)
    out = np.empty((n, 1, SIZE, SIZE), np.float32)
    for i in range(n):
        out[i, 0] = draw_one(int(shape[i]), float(scale[i]), float(angle[i]), float(pos_x[i]),
                             float(pos_y[i]), rng)  # fmt: skip
    return out
