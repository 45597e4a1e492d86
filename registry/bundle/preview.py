"""Preview grids: decoded images tiled into one PNG (a bundle's `preview.png`). Example::

    png = rgb_grid_png(images, cols=8)       # images float32 [n, C, H, W] in [0, 1], C = 1 or 3
    png = rgb_grid_png(to_unit_range(x, (-1.0, 1.0)), cols=4)
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from latentserve.core.arrays import F32
from latentserve.core.pixels import to_uint8


def to_unit_range(images: npt.ArrayLike, value_range: tuple[float, float]) -> F32:
    """Map decoder outputs in `value_range` = (lo, hi) to [0, 1] (clipped)."""
    lo, hi = value_range
    x = (np.asarray(images, np.float32) - np.float32(lo)) / np.float32(hi - lo)
    out: F32 = np.clip(x, 0.0, 1.0).astype(np.float32)
    return out


def rgb_grid_png(images: npt.ArrayLike, cols: int, *, upscale: int = 2, pad: int = 2) -> bytes:
    """Tile images [n, C, H, W] (C = 1 or 3) in [0, 1] into a PNG (gray gaps between tiles)."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"images: expected [n, 1 or 3, H, W] with n > 0, got shape {x.shape}")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    n, c, h, w = x.shape
    rows = -(-n // cols)
    tiles = to_uint8(x.transpose(0, 2, 3, 1), (0.0, 1.0))
    pixels = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 128, np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        pixels[top : top + h, left : left + w] = tiles[i]
    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels, mode="L" if c == 1 else "RGB")
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
