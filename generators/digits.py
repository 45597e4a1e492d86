"""scikit-learn's bundled handwritten digits as 32×32 images, a fixed train/test split, and
style attributes measured from the image itself (stroke thickness, slant, position, width,
height). Example::

    data = load_digit_images()                  # DigitImages: train/test images + labels
    thick = ink_mass(data.test_images)          # [M] mean ink per pixel
    lean = slant(data.test_images)              # [M] > 0: top leans right
    m = digit_measures(data.test_images)        # all of them by name, each [M]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from latentserve.core.arrays import F32, F64, I64

IMAGE_SIZE = 32
NUM_CLASSES = 10
LABELS: tuple[str, ...] = tuple(str(d) for d in range(NUM_CLASSES))
DATASET = "sklearn.datasets.load_digits (1,797 8×8 images, 0–16) bilinearly upsampled to 32×32"
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DigitImages:
    """The fixed split: float32 images [M, 1, 32, 32] in [0, 1] and int64 labels [M]."""

    train_images: F32
    train_labels: I64
    test_images: F32
    test_labels: I64


def load_digit_images() -> DigitImages:
    """Load, upsample and split (stratified, 80/20, split seed fixed so metrics compare)."""
    raw = load_digits()
    images = to_32(np.asarray(raw.images, np.float64) / 16.0)
    labels = np.asarray(raw.target, np.int64)
    tr_x, te_x, tr_y, te_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return DigitImages(tr_x, tr_y, te_x, te_y)


def to_32(images8: npt.ArrayLike) -> F32:
    """8×8 images [M, 8, 8] in [0, 1] → float32 [M, 1, 32, 32] (bilinear, clipped to [0, 1])."""
    x = torch.as_tensor(np.asarray(images8), dtype=torch.float32)
    if x.ndim != 3 or tuple(x.shape[1:]) != (8, 8):
        raise ValueError(f"images8: expected [M, 8, 8], got {tuple(x.shape)}")
    up = F.interpolate(
        x[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )
    out: F32 = up.clamp(0.0, 1.0).numpy()
    return out


def ink_mass(images: npt.ArrayLike) -> F64:
    """Stroke thickness proxy: mean pixel intensity of each image [M, 1, H, W] → [M]."""
    x = _flat_images(images)
    out: F64 = x.mean(axis=(1, 2))
    return out


def slant(images: npt.ArrayLike) -> F64:
    """Slant from second moments: −μ₁₁/μ₀₂ (x right, y down), > 0 when the top leans right."""
    x = _flat_images(images)
    h, w = x.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = x.sum(axis=(1, 2)) + 1e-9
    cx = (x * xs).sum(axis=(1, 2)) / mass
    cy = (x * ys).sum(axis=(1, 2)) / mass
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    mu11 = (x * dx * dy).sum(axis=(1, 2)) / mass
    mu02 = (x * dy * dy).sum(axis=(1, 2)) / mass
    out: F64 = -mu11 / (mu02 + 1e-9)
    return out


EXTENT_QUANTILES = (0.05, 0.95)
"""Width and height span the ink between these quantiles of its column / row profile."""


def position(images: npt.ArrayLike) -> tuple[F64, F64]:
    """Centre of mass of the ink (pos_x, pos_y) in pixels from the left / top edge."""
    x = _flat_images(images)
    h, w = x.shape[1:]
    mass = x.sum(axis=(1, 2)) + 1e-9
    cols = x.sum(axis=1) @ np.arange(w, dtype=np.float64)
    rows = x.sum(axis=2) @ np.arange(h, dtype=np.float64)
    return np.asarray(cols / mass, np.float64), np.asarray(rows / mass, np.float64)


def extent(images: npt.ArrayLike, axis: int) -> F64:
    """Span (pixels) between the EXTENT_QUANTILES of the ink's profile along one image axis
    (axis 1: across columns = width, axis 0: across rows = height), interpolated within a
    pixel, so it moves smoothly as a stroke grows or fades."""
    x = _flat_images(images)
    profile = x.sum(axis=1 + (1 - axis))  # [M, W] for the width, [M, H] for the height
    cum = np.cumsum(profile, axis=1)
    total = cum[:, -1:] + 1e-9
    frac = cum / total
    lo, hi = EXTENT_QUANTILES
    return np.asarray([_crossing(f, hi) - _crossing(f, lo) for f in frac], np.float64)


def _crossing(cum: F64, q: float) -> float:
    """Where (pixels, continuous) a cumulative profile reaches q, pixel i spanning [i, i+1)."""
    edges = np.concatenate([[0.0], cum])
    return float(np.interp(q, edges, np.arange(len(edges), dtype=np.float64)))


def digit_measures(images: npt.ArrayLike) -> dict[str, F64]:
    """Every style measure of digit images [M, 1, H, W], from pixels only: thickness (mean
    ink), slant, pos_x and pos_y (centre of mass), width and height (ink extents)."""
    pos_x, pos_y = position(images)
    return {
        "thickness": ink_mass(images),
        "slant": slant(images),
        "pos_x": pos_x,
        "pos_y": pos_y,
        "width": extent(images, 1),
        "height": extent(images, 0),
    }


def minus_class_mean(values: npt.ArrayLike, labels: npt.ArrayLike) -> F64:
    """values − mean of their class: the within-class part that a conditional z must carry."""
    v = np.asarray(values, np.float64)
    y = np.asarray(labels)
    out = v.copy()
    for c in np.unique(y):
        out[y == c] -= v[y == c].mean()
    return out


def _flat_images(images: npt.ArrayLike) -> F64:
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images: expected [M, 1, H, W], got shape {x.shape}")
    return x[:, 0]
