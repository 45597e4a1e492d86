"""Animated exports of a row of frames: GIF and APNG (Pillow), MP4 (PyAV).

Install `latentserve[images]` for GIF/APNG and `latentserve[video]` for MP4; the base SDK
needs neither, and these helpers import them only when they run. Example::

    path = client.interpolate("shapes3d", seeds=[1, 2, 3], steps=8, class_labels=[0],
                              output="uint8")
    path.save_animation("walk.gif", fps=12, scale=4)      # 15 frames, 256×256, loops forever
    path.save_animation("walk.mp4", fps=24)                # needs PyAV
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

FORMATS = {".gif": "GIF", ".png": "PNG", ".apng": "PNG", ".mp4": "MP4"}
"""File suffix → animation format (APNG is written as PNG)."""


def animation_format(path: str | Path) -> str:
    """'GIF', 'PNG' (APNG) or 'MP4' from the file name; ValueError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot write an animation to {str(path)!r}: use .gif, .apng (or .png) or .mp4"
        )
    return FORMATS[suffix]


def _scaled(frames: Sequence[Image.Image], scale: int) -> list[Image.Image]:
    if scale < 1:
        raise ValueError(f"scale must be an integer ≥ 1, got {scale}")
    if scale == 1:
        return list(frames)
    from PIL import Image

    return [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST)
            for f in frames]


def save_animation(
    frames: Sequence[Image.Image],
    path: str | Path,
    *,
    fps: float = 12.0,
    loop: bool = True,
    scale: int = 1,
) -> Path:
    """Write `frames` (PIL images of one size) as an animation; the format follows the suffix.

    `scale` enlarges each frame by an integer factor (nearest neighbour: pixels stay exact);
    `loop` makes GIF/APNG repeat forever. MP4 frames are padded to even sizes (H.264 needs
    them) and encoded with libx264 (yuv420p) at `fps`. Example::

        save_animation(result.to_pil(), "strip.gif", fps=10, scale=4)
    """
    if not frames:
        raise ValueError("an animation needs at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    kind = animation_format(path)
    out = Path(path)
    images = _scaled(frames, scale)
    if kind == "MP4":
        _write_mp4(images, out, fps)
        return out
    duration_ms = max(1, round(1000.0 / fps))
    first, *rest = images
    options: dict[str, Any] = {"save_all": True, "append_images": rest,
                               "duration": duration_ms, "format": kind}
    if loop:
        options["loop"] = 0
    if kind == "GIF":
        options["disposal"] = 1
        options["optimize"] = False
    first.save(out, **options)
    return out


def _write_mp4(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    try:
        import av
    except ImportError as err:
        raise ImportError(
            "MP4 export needs PyAV: pip install 'latentserve[video]' (or 'av')"
        ) from err
    width, height = frames[0].size
    even_w, even_h = width + width % 2, height + height % 2
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        for image in frames:
            rgb = np.zeros((even_h, even_w, 3), np.uint8)
            rgb[:height, :width] = np.asarray(image.convert("RGB"))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
