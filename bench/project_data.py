"""Targets for the projection benchmark: (a) generated images, (b) pictures the model never
produced — renders of the data spec, sprites drawn by a routine of our own (PIL polygons:
a rotated square, an ellipse, the standard parametric heart curve), real sklearn digits.
Images are in [0, 1] whatever the model's output range.

Example::

    images, labels = other_sprites(50, seed=3)     # float32 [50, 1, 64, 64], labels [50]
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from latentserve.core.arrays import F32, I64

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
    if model == "sprites-vae":
        half = n // 2
        a, la = data_spec_renders(model, half, stream=seed)
        b, lb = other_sprites(n - half, seed)
        return (np.concatenate([a, b]), np.concatenate([la, lb]),
                f"{half} data-spec renders + {n - half} PIL-polygon sprites (parametric heart)")
    images, labels = data_spec_renders(model, n, stream=seed)
    return images, labels, f"{n} data-spec renders"
