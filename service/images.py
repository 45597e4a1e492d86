"""Image encodings on the wire: float32 in the model's range, uint8 0..255, or PNG per item.

Example::

    u8 = to_uint8(images, (0.0, 1.0))           # [n, C, H, W] uint8
    pngs = to_png(images, (0.0, 1.0))           # list of PNG bytes
    back = from_png(pngs, (1, 64, 64), (0.0, 1.0), field="png.images")
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from latentserve.core.arrays import F32
from latentserve.core.errors import InvalidArgument
from latentserve.core.pixels import from_uint8, to_uint8


def to_png(images: F32, value_range: tuple[float, float]) -> list[bytes]:
    """One lossless PNG per item (grayscale for C=1, RGB for C=3)."""
    pngs = []
    for item in to_uint8(images, value_range):
        pixels = item[0] if item.shape[0] == 1 else np.transpose(item, (1, 2, 0))
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
        pngs.append(buffer.getvalue())
    return pngs


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sIIBB")
"""Length, type, width, height, bit depth, colour type: the start of every PNG after the
signature (the IHDR chunk must come first)."""
_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}


def png_header(blob: bytes, *, field: str) -> tuple[int, int]:
    """(width, height) read from a PNG's IHDR chunk, without decoding anything.

    Refuses anything that is not a PNG (no other decoder is ever tried) or whose header is
    malformed, so the size checks can run before a single pixel is inflated.
    """
    if not blob.startswith(PNG_SIGNATURE):
        raise InvalidArgument(f"{field} is not a PNG (PNG signature missing)", field=field)
    if len(blob) < len(PNG_SIGNATURE) + _IHDR.size:
        raise InvalidArgument(f"{field} is not a readable PNG (truncated header)", field=field)
    length, kind, width, height, depth, colour = _IHDR.unpack_from(blob, len(PNG_SIGNATURE))
    if kind != b"IHDR" or length != 13 or colour not in _COLOUR_TYPES or depth not in (
        1, 2, 4, 8, 16
    ):
        raise InvalidArgument(f"{field} is not a readable PNG (bad IHDR header)", field=field)
    return width, height


def from_png(
    blobs: Sequence[bytes], shape: Sequence[int], value_range: tuple[float, float], *, field: str
) -> F32:
    """Decode PNGs to float32 [n, C, H, W] in the model's range; each must be C×H×W.

    Every header is checked first (PNG only, exactly the model's width × height), so nothing
    larger than one model-sized image is ever decoded (no decompression bombs).
    """
    channels, height, width = shape
    for i, blob in enumerate(blobs):
        got = png_header(blob, field=f"{field}[{i}]")
        if got != (width, height):
            raise InvalidArgument(
                f"{field}[{i}] is {got[0]}×{got[1]}, the model takes {width}×{height}",
                field=f"{field}[{i}]",
            )
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(blobs), channels, height, width), dtype=np.float32)
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob), formats=["PNG"]) as image:
                if image.size != (width, height):  # the header said otherwise: refuse
                    raise InvalidArgument(
                        f"{field}[{i}] is {image.size[0]}×{image.size[1]}, "
                        f"the model takes {width}×{height}",
                        field=f"{field}[{i}]",
                    )
                image.load()
                pixels = np.asarray(image.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
                ValueError, EOFError) as exc:
            raise InvalidArgument(
                f"{field}[{i}] is not a readable PNG ({exc})", field=f"{field}[{i}]"
            ) from None
        chw = pixels[None] if channels == 1 else np.transpose(pixels, (2, 0, 1))
        out[i] = from_uint8(chw, value_range)
    return out
