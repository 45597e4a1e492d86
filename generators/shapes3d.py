"""A Shapes3D-spec renderer: 64×64 RGB scenes of one object in a room, from six known factors.

Factors (the Shapes3D layout, named so everywhere): `floor_hue`, `wall_hue`, `object_hue`
(10 values each in [0, 1), a hue turn), `scale` (8 values in [0.75, 1.25]), `shape` ∈ {cube,
cylinder, sphere, capsule} and `orientation` (15 values in [−30°, 30°], the camera's azimuth:
it moves the room's corner and turns the cube and the capsule). Everything is drawn
procedurally with 2×2 supersampling: the floor darkens towards the horizon, the two walls
are lit differently, the object is shaded from the upper left and casts a contact shadow.
Example::

    idx = sample_factor_indices(8, seed=0)          # int64 [8, 6] grid indices
    images = render_indices(idx)                    # float32 [8, 3, 64, 64] in [0, 1]
    one = render(floor_hue=[0.0], wall_hue=[0.5], object_hue=[0.3], scale=[1.0],
                 shape=["sphere"], orientation=[10.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64, I64

IMAGE_SIZE = 64
FACTOR_NAMES: tuple[str, ...] = (
    "floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation",
)  # fmt: skip
SHAPES: tuple[str, ...] = ("cube", "cylinder", "sphere", "capsule")
FACTOR_SIZES: dict[str, int] = {
    "floor_hue": 10, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4, "orientation": 15,
}  # fmt: skip
SCALE_RANGE = (0.75, 1.25)
ORIENTATION_RANGE = (-30.0, 30.0)
"""Degrees of camera azimuth."""

HORIZON = 38.0
"""Row of the floor/wall line (pixels from the top)."""
GROUND = 55.0
"""Row the object stands on."""
CORNER_SWING = 22.0
"""Pixels the room's corner moves from the centre column at ±30°."""
WALL = {"saturation": 0.55, "left": 0.92, "right": 0.7}
FLOOR = {"saturation": 0.55, "far": 0.6, "near": 0.9}
OBJECT_SATURATION = 0.95
_SIZE = 16.0
"""Object size in pixels at scale 1."""
_SS = 2


def factor_values(name: str) -> F64:
    """The grid values of one factor (for `shape`: 0…3 indexing SHAPES)."""
    if name in ("floor_hue", "wall_hue", "object_hue"):
        return np.arange(10, dtype=np.float64) / 10.0
    if name == "scale":
        return np.linspace(*SCALE_RANGE, 8)
    if name == "shape":
        return np.arange(4, dtype=np.float64)
    if name == "orientation":
        return np.linspace(*ORIENTATION_RANGE, 15)
    raise ValueError(f"unknown factor {name!r}; factors are {', '.join(FACTOR_NAMES)}")


def sample_factor_indices(n: int, seed: int, *, stream: int = 0) -> I64:
    """`n` factor combinations drawn uniformly over the grid: int64 [n, 6] (FACTOR_NAMES)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, 0x3D5]))
    sizes = np.array([FACTOR_SIZES[f] for f in FACTOR_NAMES])
    return rng.integers(0, sizes, size=(n, len(FACTOR_NAMES)), dtype=np.int64)


def indices_to_values(indices: I64) -> F64:
    """Grid indices [n, 6] → factor values [n, 6] (shape stays its index)."""
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"indices: expected shape [n, {len(FACTOR_NAMES)}], got {idx.shape}")
    for i, f in enumerate(FACTOR_NAMES):
        if np.any((idx[:, i] < 0) | (idx[:, i] >= FACTOR_SIZES[f])):
            raise ValueError(f"indices: {f} must be in 0..{FACTOR_SIZES[f] - 1}")
    return np.stack([factor_values(f)[idx[:, i]] for i, f in enumerate(FACTOR_NAMES)], axis=1)


def render_indices(indices: I64, *, chunk: int = 256) -> F32:
    """Render grid factor combinations [n, 6] → float32 images [n, 3, 64, 64]."""
    v = indices_to_values(indices)
    return render(floor_hue=v[:, 0], wall_hue=v[:, 1], object_hue=v[:, 2], scale=v[:, 3],
                  shape=v[:, 4].astype(np.int64), orientation=v[:, 5], chunk=chunk)  # fmt: skip


def render(
    *,
    floor_hue: Sequence[float] | F64,
    wall_hue: Sequence[float] | F64,
    object_hue: Sequence[float] | F64,
    scale: Sequence[float] | F64,
    shape: Sequence[str] | Sequence[int] | I64,
    orientation: Sequence[float] | F64,
    chunk: int = 256,
) -> F32:
    """Render any (also off-grid) factor values → float32 [n, 3, 64, 64] in [0, 1].

    Hues are taken modulo 1; scale must lie in SCALE_RANGE, orientation (degrees) in
    ORIENTATION_RANGE; `shape` items are names from SHAPES or their indices.
    """
    shapes = np.array([SHAPES.index(s) if isinstance(s, str) and s in SHAPES else s
                       for s in shape], dtype=object)  # fmt: skip
    for s in shapes:
        if isinstance(s, str) or not 0 <= int(s) < len(SHAPES):
            raise ValueError(f"shape: {s!r} is not one of {SHAPES} or an index 0..3")
    n = len(shapes)
    cols = {
        "floor_hue": np.mod(np.asarray(floor_hue, np.float64), 1.0),
        "wall_hue": np.mod(np.asarray(wall_hue, np.float64), 1.0),
        "object_hue": np.mod(np.asarray(object_hue, np.float64), 1.0),
        "scale": np.asarray(scale, np.float64),
        "orientation": np.asarray(orientation, np.float64),
    }
    for name, col in cols.items():
        if col.shape != (n,):
            raise ValueError(f"{name}: expected {n} values like shape, got shape {col.shape}")
        if not np.all(np.isfinite(col)):
            raise ValueError(f"{name}: values must be finite")
    for name, (lo, hi) in {"scale": SCALE_RANGE, "orientation": ORIENTATION_RANGE}.items():
        if np.any((cols[name] < lo - 1e-9) | (cols[name] > hi + 1e-9)):
            raise ValueError(f"{name}: values must lie in [{lo}, {hi}]")
    out = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        out[sl] = _render_chunk(shapes[sl].astype(np.int64), {k: v[sl] for k, v in cols.items()})
    return out


def hsv_to_rgb(h: F64, s: F64, v: F64) -> F64:
    """HSV (each in [0, 1], broadcastable) → RGB [..., 3]."""
    h6 = np.mod(h, 1.0) * 6.0
    c = v * s
    x = c * (1.0 - np.abs(np.mod(h6, 2.0) - 1.0))
    m = v - c
    sector = np.floor(h6).astype(np.int64) % 6
    zero = np.zeros_like(c)
    table = [(c, x, zero), (x, c, zero), (zero, c, x), (zero, x, c), (x, zero, c), (c, zero, x)]
    r = np.select([sector == i for i in range(6)], [t[0] for t in table])
    g = np.select([sector == i for i in range(6)], [t[1] for t in table])
    b = np.select([sector == i for i in range(6)], [t[2] for t in table])
    return np.stack([r + m, g + m, b + m], axis=-1)


def corner_column(orientation_deg: F64) -> F64:
    """Column (pixels, continuous) of the room's corner for an azimuth in degrees."""
    return IMAGE_SIZE / 2 + CORNER_SWING * np.asarray(orientation_deg, np.float64) / 30.0


def _render_chunk(shape: I64, f: dict[str, F64]) -> F32:
    n, size = len(shape), IMAGE_SIZE * _SS
    coords = (np.arange(size, dtype=np.float64) + 0.5) / _SS
    y = coords[None, :, None]
    x = coords[None, None, :]
    # background: walls above the horizon (two lit sides of the corner), floor below
    corner = corner_column(f["orientation"])[:, None, None]
    wall_v = np.where(x < corner, WALL["left"], WALL["right"])
    depth = np.clip((y - HORIZON) / (IMAGE_SIZE - HORIZON), 0.0, 1.0)
    floor_v = FLOOR["far"] + (FLOOR["near"] - FLOOR["far"]) * depth
    is_wall = y < HORIZON
    hue = np.where(is_wall, f["wall_hue"][:, None, None], f["floor_hue"][:, None, None])
    sat = np.where(is_wall, WALL["saturation"], FLOOR["saturation"])
    val = np.where(is_wall, wall_v, floor_v)
    hue, sat, val = (np.broadcast_to(a, (n, size, size)).copy() for a in (hue, sat, val))
    # contact shadow
    s = f["scale"][:, None, None] * _SIZE
    half_w = _half_width(shape, f["orientation"], s)
    shadow = ((x - IMAGE_SIZE / 2) / (half_w * 1.25)) ** 2 + ((y - GROUND) / 2.5) ** 2 <= 1.0
    val = np.where(shadow & ~is_wall, val * 0.72, val)
    # object
    obj_mask, obj_v = _object(shape, f["orientation"], s, x, y)
    hue = np.where(obj_mask, f["object_hue"][:, None, None], hue)
    sat = np.where(obj_mask, OBJECT_SATURATION, sat)
    val = np.where(obj_mask, obj_v, val)
    rgb = hsv_to_rgb(hue, sat, val)  # [n, size, size, 3]
    pooled = rgb.reshape(n, IMAGE_SIZE, _SS, IMAGE_SIZE, _SS, 3).mean(axis=(2, 4))
    return np.ascontiguousarray(pooled.transpose(0, 3, 1, 2)).astype(np.float32)


CUBE_SIDE = 0.85
"""The cube's side (in object sizes)."""
CUBE_ELEVATION = 20.0
"""Degrees the camera looks down on the cube (so its top face shows)."""
CUBE_TURN = 45.0
"""The cube's own turn (degrees) at azimuth 0: a corner faces the camera."""
_LIGHT = np.array([-0.55, 0.75, 0.45]) / np.linalg.norm([-0.55, 0.75, 0.45])
"""Direction to the light (right, up, towards the camera) that shades the cube's faces."""
CAPSULE_RADIUS = 0.36
"""The lying capsule's radius (in object sizes): its height is 2 · this · scale."""


def cube_corners(orientation: F64, side: F64) -> F64:
    """Screen positions (x right, y down, pixels) of a cube's 8 corners [n, 8, 2]: a cube of
    `side` pixels standing on the floor, turned by CUBE_TURN + the azimuth about its vertical
    axis, seen orthographically from CUBE_ELEVATION above, its lowest corner on GROUND."""
    beta = np.radians(CUBE_TURN + np.asarray(orientation, np.float64))[:, None]
    e = np.radians(CUBE_ELEVATION)
    h = np.asarray(side, np.float64).reshape(-1, 1) / 2
    sx = np.array([-1, 1, 1, -1, -1, 1, 1, -1], np.float64)[None]
    sz = np.array([-1, -1, 1, 1, -1, -1, 1, 1], np.float64)[None]
    up = np.array([0, 0, 0, 0, 2, 2, 2, 2], np.float64)[None]
    x = h * (sx * np.cos(beta) + sz * np.sin(beta))  # rotated about the vertical axis
    z = h * (-sx * np.sin(beta) + sz * np.cos(beta))  # towards the camera
    screen_up = h * up * np.cos(e) - z * np.sin(e)
    screen_up = screen_up - screen_up.min(axis=1, keepdims=True)
    return np.stack([IMAGE_SIZE / 2 + x, GROUND - screen_up], axis=-1)


def _cube_faces(orientation: F64) -> tuple[tuple[list[int], F64], ...]:
    """The cube's visible faces: (corner indices in order, brightness [n]) of the top, the
    left-front and the right-front face, each flat-shaded by Lambert's law."""
    beta = np.radians(CUBE_TURN + np.asarray(orientation, np.float64))
    e = np.radians(CUBE_ELEVATION)

    def lit(nx: F64, nz: F64) -> F64:  # a side's world normal (nx, 0, nz) → camera → light
        normal = np.stack([nx, -nz * np.sin(e), nz * np.cos(e)], axis=-1)
        return np.asarray(0.42 + 0.58 * np.clip(normal @ _LIGHT, 0.0, 1.0), np.float64)

    top = 0.42 + 0.58 * max(float(np.array([0.0, np.cos(e), np.sin(e)]) @ _LIGHT), 0.0)
    return (
        ([4, 5, 6, 7], np.full(len(beta), top)),
        ([0, 3, 7, 4], lit(-np.cos(beta), np.sin(beta))),  # the −x face
        ([3, 2, 6, 7], lit(np.sin(beta), np.cos(beta))),  # the +z face
    )


def _in_quad(x: F64, y: F64, quad: F64) -> npt.NDArray[np.bool_]:
    """Which points lie inside convex quads [n, 4, 2] (corners in order) [n, H, W]."""
    inside = np.ones(np.broadcast_shapes(x.shape, y.shape, (len(quad), 1, 1)), bool)
    area = np.zeros(len(quad))
    for i in range(4):
        (ax, ay), (bx, by) = quad[:, i].T, quad[:, (i + 1) % 4].T
        area += ax * by - bx * ay
    orient = np.sign(area)[:, None, None]
    for i in range(4):
        a, b = quad[:, i], quad[:, (i + 1) % 4]
        ax, ay, bx, by = (v[:, None, None] for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
        cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax)
        inside &= orient * cross >= 0
    return inside


def _half_width(shape: I64, orientation: F64, s: F64) -> F64:
    """Half the drawn width of each object (pixels) [n, 1, 1]."""
    corners = cube_corners(orientation, CUBE_SIDE * s[:, 0, 0])
    cube = (np.ptp(corners[..., 0], axis=1) / 2)[:, None, None]
    capsule = capsule_half_length(orientation)[:, None, None] * s
    per_shape = np.stack([cube, s / 2, s / 2, capsule])
    return np.asarray(np.take_along_axis(per_shape, shape[None, :, None, None], axis=0)[0],
                      np.float64)


def capsule_half_length(orientation: F64) -> F64:
    """Half the projected length of the lying capsule (in object sizes)."""
    return 0.3 + 0.5 * np.cos(np.radians(orientation + 25.0))


def _object(shape: I64, orientation: F64, s: F64, x: F64, y: F64) -> tuple[F64, F64]:
    """(mask, brightness) of each object at supersampled pixel coordinates."""
    n = len(shape)
    size = x.shape[-1]
    mask = np.zeros((n, size, size), bool)
    val = np.zeros((n, size, size))
    cx = IMAGE_SIZE / 2
    for k in np.unique(shape):
        sel = shape == k
        ss, o = s[sel], orientation[sel]
        if k == 0:  # cube: its top and two front faces, flat-shaded, turned by the azimuth
            corners = cube_corners(o, CUBE_SIDE * ss[:, 0, 0])
            m = np.zeros((len(ss), size, size), bool)
            v = np.zeros((len(ss), size, size))
            for at, brightness in _cube_faces(o):
                face = _in_quad(x, y, corners[:, at]) & ~m
                v = np.where(face, brightness[:, None, None], v)
                m |= face
        elif k == 1:  # cylinder: shaded body and an elliptical top
            half = ss / 2
            body = (np.abs(x - cx) <= half) & (y <= GROUND) & (y >= GROUND - ss)
            lid = ((x - cx) / half) ** 2 + ((y - (GROUND - ss)) / (0.25 * ss)) ** 2 <= 1.0
            m = body | lid
            shade = 0.95 - 0.4 * np.clip((x - (cx - half)) / (2 * half), 0.0, 1.0)
            v = np.where(lid & ~(body & (y > GROUND - ss)), 1.0, shade)
        elif k == 2:  # sphere resting on the ground
            r = ss / 2
            cy = GROUND - r
            d2 = ((x - cx) ** 2 + (y - cy) ** 2) / r**2
            m = d2 <= 1.0
            light = ((x - cx + 0.4 * r) ** 2 + (y - cy + 0.4 * r) ** 2) / r**2
            v = np.clip(1.0 - 0.32 * light, 0.45, 1.0)
        else:  # capsule lying on the ground, turned by the azimuth
            half = capsule_half_length(o)[:, None, None] * ss
            r = CAPSULE_RADIUS * ss
            cy = GROUND - r
            core = np.clip(x - cx, -(half - r), half - r)
            d2 = ((x - cx - core) ** 2 + (y - cy) ** 2) / r**2
            m = d2 <= 1.0
            v = np.clip(1.0 - 0.35 * ((y - cy + 0.45 * r) / r) ** 2, 0.5, 1.0)
        mask[sel] = m
        val[sel] = v
    return mask, val
