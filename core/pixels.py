"""Float images in a model's output range ↔ 8-bit pixels, defined once.

The service's `uint8` and PNG outputs, its PNG inputs and the SDK's `to_pil()` all use these
two functions, so every path from float images to pixels gives the same grey levels. The
range is taken as float32, as the wire carries it (`ModelInfo.output_min`/`output_max`,
`GenerateResponse.output_range`). Example::

    to_uint8(np.array([[[[-1.0, 0.0, 1.0]]]], np.float32), (-1.0, 1.0))   # [[[[0, 128, 255]]]]
    from_uint8(np.array([0, 255], np.uint8), (-1.0, 1.0))                 # [-1.0, 1.0]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, U8


def _bounds(value_range: tuple[float, float]) -> tuple[np.float32, np.float32]:
    lo, hi = np.float32(value_range[0]), np.float32(value_range[1])
    if not hi > lo:
        raise ValueError(f"output range must be (lo, hi) with lo < hi, got {value_range}")
    return lo, hi


def to_uint8(images: npt.ArrayLike, value_range: tuple[float, float]) -> U8:
    """Map [lo, hi] linearly onto 0..255 in float32, rounded half to even and clipped
    (NaN becomes 0)."""
    lo, hi = _bounds(value_range)
    scaled = (np.asarray(images, dtype=np.float32) - lo) * np.float32(255.0 / float(hi - lo))
    np.nan_to_num(scaled, copy=False, nan=0.0)
    pixels: U8 = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return pixels


def from_uint8(pixels: npt.ArrayLike, value_range: tuple[float, float]) -> F32:
    """Inverse of `to_uint8` (up to its rounding): 0..255 → [lo, hi] as float32."""
    lo, hi = _bounds(value_range)
    values: F32 = np.asarray(pixels, dtype=np.float32) * np.float32(float(hi - lo) / 255.0) + lo
    return values
