"""Image encodings on the wire: float32 in the model's range, uint8 0..255, or PNG per item.

Example::

    u8 = to_uint8(images, (0.0, 1.0))           # [n, C, H, W] uint8
    pngs = to_png(images, (0.0, 1.0))           # list of PNG bytes
    back = from_png(pngs, (1, 64, 64), (0.0, 1.0), field="png.images")
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from latentserve.core.arrays import F32, U8
from latentserve.core.errors import InvalidArgument


def to_uint8(images: F32, value_range: tuple[float, float]) -> U8:
    """Map [lo, hi] linearly to 0..255 (clipped, rounded)."""
    lo, hi = value_range
    scaled = (np.asarray(images, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    clipped: U8 = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return clipped


def from_uint8(images: U8, value_range: tuple[float, float]) -> F32:
    """Inverse of to_uint8 (up to rounding)."""
    lo, hi = value_range
    return (images.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(np.float32)


def to_png(images: F32, value_range: tuple[float, float]) -> list[bytes]:
    """One lossless PNG per item (grayscale for C=1, RGB for C=3)."""
    pngs = []
    for item in to_uint8(images, value_range):
        pixels = item[0] if item.shape[0] == 1 else np.transpose(item, (1, 2, 0))
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
        pngs.append(buffer.getvalue())
    return pngs


def from_png(
    blobs: Sequence[bytes], shape: Sequence[int], value_range: tuple[float, float], *, field: str
) -> F32:
    """Decode PNGs to float32 [n, C, H, W] in the model's range; each must be C×H×W."""
    channels, height, width = shape
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(blobs), channels, height, width), dtype=np.float32)
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob)) as image:
                image.load()
                if image.format != "PNG":
                    raise InvalidArgument(
                        f"{field}[{i}] is {image.format}, not PNG", field=f"{field}[{i}]"
                    )
                if image.size != (width, height):
                    raise InvalidArgument(
                        f"{field}[{i}] is {image.size[0]}×{image.size[1]}, "
                        f"the model takes {width}×{height}",
                        field=f"{field}[{i}]",
                    )
                pixels = np.asarray(image.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise InvalidArgument(
                f"{field}[{i}] is not a readable PNG ({exc})", field=f"{field}[{i}]"
            ) from None
        chw = pixels[None] if channels == 1 else np.transpose(pixels, (2, 0, 1))
        out[i] = from_uint8(chw, value_range)
    return out
