"""Pictures uploaded to the explorer: bounded before they are decoded, deleted once read.

Gradio keeps every upload in its cache folder and, asked for an array, decodes it first: a
0.5 MB PNG of 13000 × 13000 pixels cost 1.6–2.3 GiB that way. The explorer takes uploads as
file paths and reads them here: the file size and the pixel count (from the image header; PIL
opens lazily) are checked before any pixel is decoded, only PNG, JPEG and WebP are opened, and
the file is removed from the cache once read. Example::

    pixels = read_upload(path)     # [H, W, 3] uint8; ValueError when over a limit
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
"""Largest upload accepted (also Gradio's own `max_file_size` for the page)."""
MAX_UPLOAD_PIXELS = 4096 * 4096
"""Most pixels an uploaded picture may have (checked from its header, before decoding)."""
FORMATS = ("PNG", "JPEG", "WEBP")
"""The only image formats opened (never EPS, which would run Ghostscript)."""
CACHE_CLEANUP = (600, 3600)
"""Gradio's `delete_cache`: every 10 minutes, delete cached files older than an hour."""


def read_upload(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """The RGB pixels of an uploaded picture; the file is deleted whether or not it was
    accepted. ValueError (shown on the page) when it is too large or not a picture."""
    upload = Path(path)
    try:
        size = upload.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the upload has {size / 2**20:.1f} MB; at most "
                             f"{MAX_UPLOAD_BYTES // 2**20} MB are accepted")
        try:
            with Image.open(upload, formats=FORMATS) as img:
                width, height = img.size  # from the header: nothing decoded yet
                if width * height > MAX_UPLOAD_PIXELS:
                    raise ValueError(f"the upload is {width}×{height} pixels; at most "
                                     f"{MAX_UPLOAD_PIXELS:,} pixels are accepted")
                return np.asarray(img.convert("RGB"), np.uint8)
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"the upload is not a PNG, JPEG or WebP picture ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            upload.unlink()
