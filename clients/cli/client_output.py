"""What the client commands print and read: JSON documents, progress bars, image files.

Example::

    print_json(plain(client.get_model("sprites-vae")))    # the ModelInfo as one JSON object
    frames = GenerateResult.join(with_progress(client.stream_interpolate(...), total, console))
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentserve.client import GenerateResult
from latentserve.client.animation import FORMATS

PROGRESS_MIN_FRAMES = 64
"""Streams of at least this many frames show a progress bar (on stderr, when a terminal)."""


def is_animation(path: Path) -> bool:
    """Whether `path` names an animation (.gif, .apng, .mp4); .png is a grid."""
    return path.suffix.lower() in FORMATS and path.suffix.lower() != ".png"


def plain(value: Any) -> Any:
    """A result dataclass (or containers of them) as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def print_json(document: Any) -> None:
    """One JSON document on stdout (UTF-8, not ASCII-escaped)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def generated_json(result: GenerateResult, out: Path) -> dict[str, Any]:
    """What `--json` prints for a generation command: file, model, count, latents."""
    return {"out": str(out), "model": plain(result.model), "count": len(result),
            "latents": result.latents.tolist()}


def with_progress(chunks: Iterable[GenerateResult], total: int,
                  console: Console) -> list[GenerateResult]:
    """Read a stream's chunks, showing frames done / total when the stream is long."""
    if total < PROGRESS_MIN_FRAMES or not console.is_terminal:
        return list(chunks)
    columns = (TextColumn("frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    got: list[GenerateResult] = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("frames", total=total)
        for chunk in chunks:
            got.append(chunk)
            progress.update(task, completed=chunk.offset + len(chunk))
    return got


def read_images(paths: Sequence[Path], shape: Sequence[int], *,
                resize: bool = False) -> npt.NDArray[np.uint8]:
    """Image files as uint8 [n, C, H, W] of the model's output `shape` (C = 1 grey, 3 RGB);
    needs Pillow. A file of another size is refused (a grid of pictures would otherwise be
    squeezed into one meaningless picture) unless `resize` is set."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("reading images needs Pillow: pip install 'latentserve[images]'") \
            from err
    channels, height, width = (int(d) for d in shape)
    out = []
    for path in paths:
        with Image.open(path) as img:
            if img.size != (width, height) and not resize:
                raise ValueError(_size_refusal(path, img.size, (width, height)))
            picture = img.convert("L" if channels == 1 else "RGB").resize(
                (width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(picture, np.uint8)
        out.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
    return np.stack(out)


def _size_refusal(path: Path, size: tuple[int, int], want: tuple[int, int]) -> str:
    """Why a picture of the wrong size is refused, naming a grid when it looks like one."""
    (w, h), (ww, wh) = size, want
    message = f"{path} is {w}×{h} pixels; the model takes one {ww}×{wh} picture per file"
    if w >= 2 * ww or h >= 2 * wh:
        message += " (this looks like a grid of pictures: write one picture per file, e.g. " \
                   "`latentserve sample --n 1 --seed 3 --out a.png`)"
    return message + "; pass --resize to scale it anyway"
