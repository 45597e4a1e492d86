"""Pillow helpers: arrays ↔ PIL images and PNG bytes, image grids.

Pillow is optional for the SDK; it is imported here, lazily, only when one of these helpers
runs. Example::

    pil = to_pil_images(images, output_range=(0.0, 1.0))    # float32 [n, C, H, W] → n images
    grid(pil, ncols=4).save("grid.png")
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from latentserve.core import pixels

if TYPE_CHECKING:
    from PIL import Image

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "latentserve.client image helpers need Pillow: pip install 'latentserve[images]' "
            "(in a checkout: pip install '.[images]')"
        ) from err
    return Image


def to_uint8(
    images: npt.NDArray[Any], output_range: tuple[float, float] | None = None
) -> npt.NDArray[np.uint8]:
    """Map images to uint8: uint8 passes through, floats map `output_range` to 0..255 exactly
    as the service's `output="uint8"` does (`latentserve.core.pixels`).

    Example::

        to_uint8(np.array([[[[-1.0, 1.0]]]], np.float32), (-1.0, 1.0))   # [[[[0, 255]]]]
    """
    if images.dtype == np.uint8:
        return images
    if output_range is None:
        raise ValueError(
            "float images need the model's output range to become pixels; pass output_range="
        )
    return pixels.to_uint8(images, output_range)


def to_pil_images(
    images: npt.NDArray[Any], output_range: tuple[float, float] | None = None
) -> list[Image.Image]:
    """Turn [n, C, H, W] images (C = 1, 3 or 4) into n PIL images."""
    if images.ndim != 4 or images.shape[1] not in _MODES:
        raise ValueError(f"images must be [n, C, H, W] with C in 1, 3, 4; got {images.shape}")
    image_mod = _pil()
    pixels = to_uint8(images, output_range)
    out = []
    for item in pixels:  # fromarray infers L / RGB / RGBA from [H, W] / [H, W, 3] / [H, W, 4]
        hwc = np.ascontiguousarray(item[0] if item.shape[0] == 1 else item.transpose(1, 2, 0))
        out.append(image_mod.fromarray(hwc))
    return out


def pngs_to_pil(pngs: Sequence[bytes]) -> list[Image.Image]:
    """Decode PNG files into PIL images (fully loaded)."""
    image_mod = _pil()
    out = []
    for data in pngs:
        img = image_mod.open(io.BytesIO(data))
        img.load()
        out.append(img)
    return out


def pil_to_png(image: Image.Image) -> bytes:
    """Encode one PIL image as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def array_to_pngs(images: npt.NDArray[np.uint8]) -> list[bytes]:
    """Encode uint8 [n, C, H, W] images as one PNG each."""
    return [pil_to_png(img) for img in to_pil_images(images)]


def grid(
    images: Sequence[Image.Image], ncols: int | None = None, *, padding: int = 0
) -> Image.Image:
    """Paste equally sized images into one, row by row (default ncols: ceil(sqrt(n))).

    Example::

        grid(result.to_pil(), ncols=5, padding=2).save("sweep.png")
    """
    if not images:
        raise ValueError("grid needs at least one image")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be ≥ 1, got {ncols}")
    if padding < 0:
        raise ValueError(f"padding must be ≥ 0, got {padding}")
    image_mod = _pil()
    cols = min(ncols or math.ceil(math.sqrt(len(images))), len(images))
    rows = math.ceil(len(images) / cols)
    width, height = images[0].size
    mode = images[0].mode
    sheet: Image.Image = image_mod.new(
        mode, (cols * width + (cols - 1) * padding, rows * height + (rows - 1) * padding)
    )
    for i, img in enumerate(images):
        if img.size != (width, height):
            raise ValueError(f"grid images must share one size; image {i} is {img.size}")
        row, col = divmod(i, cols)
        sheet.paste(img.convert(mode), (col * (width + padding), row * (height + padding)))
    return sheet
