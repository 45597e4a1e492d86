"""Labelled data for direction discovery and evaluation: latents or images with label columns,
read from a `.npz` or a `.csv` file. Example::

    data = read_labels(Path("labels.npz"), spec)   # npz: latents [n, N] or images [n, C, H, W]
    data.columns["smile"], data.latents             # plus one 1-D array per label column

An `.npz` holds `latents` [n, N] or `images` [n, C, H, W] (in the bundle's output range), an
optional `condition` [n] (class index, for conditional bundles) and one array [n] per label.
A `.csv` has a header; either an `image` column (PNG paths relative to the file, scaled from
[0, 255] to the output range) or latent columns `z0` … `z{N-1}`, an optional `condition`
column, and numeric label columns. N is the size of the bundle's editing space: a two-stage
bundle's latents are W codes (`mapping.w_dim` values). Nothing is unpickled.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentserve.core.arrays import F32, F64, I64
from latentserve.registry.bundle.spec import BundleError, BundleSpec

RESERVED = frozenset({"latents", "images", "condition", "image"})
MAX_ROWS = 200_000


@dataclass(frozen=True)
class LabelData:
    """n labelled items: latents or images (one of them), class conditions, label columns."""

    latents: F32 | None
    images: F32 | None
    condition: I64 | None
    columns: dict[str, F64]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def read_labels(path: Path, spec: BundleSpec) -> LabelData:
    """Read and check a labels file against the bundle's spec (sizes, latent dim, classes)."""
    if not path.is_file():
        raise BundleError(f"labels: {path} is not a file")
    if path.suffix == ".npz":
        data = _read_npz(path)
    elif path.suffix == ".csv":
        data = _read_csv(path, spec)
    else:
        raise BundleError(f"labels: {path} must be a .npz or .csv file")
    return _check(path, data, spec)


def _read_npz(path: Path) -> LabelData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"labels: {path} is not a readable .npz of plain arrays ({exc})") \
            from None
    latents = arrays.get("latents")
    images = arrays.get("images")
    condition = arrays.get("condition")
    columns = {k: np.asarray(v, np.float64) for k, v in arrays.items()
               if k not in RESERVED and v.dtype.kind in "fiub"}  # fmt: skip
    return LabelData(None if latents is None else np.asarray(latents, np.float32),
                     None if images is None else np.asarray(images, np.float32),
                     None if condition is None else np.asarray(condition, np.int64), columns)


def _read_csv(path: Path, spec: BundleSpec) -> LabelData:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise BundleError(f"labels: {path} has no rows")
    if len(rows) > MAX_ROWS:
        raise BundleError(f"labels: {path} has {len(rows)} rows, more than {MAX_ROWS}")
    header = list(rows[0])
    z_cols = [f"z{i}" for i in range(spec.editing_dim)]
    latents = images = None
    if "image" in header:
        images = np.stack([_png(path.parent / r["image"], spec) for r in rows])
    elif all(c in header for c in z_cols):
        latents = np.array([[float(r[c]) for c in z_cols] for r in rows], np.float32)
    else:
        raise BundleError(f"labels: {path} needs an 'image' column or latent columns "
                          f"z0 … z{spec.editing_dim - 1}")
    condition = (np.array([int(r["condition"]) for r in rows], np.int64)
                 if "condition" in header else None)  # fmt: skip
    columns = {}
    for name in header:
        if name in RESERVED or name in z_cols:
            continue
        try:
            columns[name] = np.array([float(r[name]) for r in rows], np.float64)
        except (TypeError, ValueError):
            raise BundleError(f"labels: column {name!r} of {path} is not numeric") from None
    return LabelData(latents, images, condition, columns)


def _png(path: Path, spec: BundleSpec) -> F32:
    c, h, w = spec.output.shape
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("L" if c == 1 else "RGB"), np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise BundleError(f"labels: cannot read image {path} ({exc})") from None
    if pixels.shape[:2] != (h, w):
        raise BundleError(f"labels: image {path} is {pixels.shape[1]}×{pixels.shape[0]}, the "
                          f"bundle's images are {w}×{h}")
    lo, hi = spec.output.range
    chw = pixels.reshape(h, w, c).transpose(2, 0, 1)
    out: F32 = (lo + chw * (hi - lo)).astype(np.float32)
    return out


def _check(path: Path, data: LabelData, spec: BundleSpec) -> LabelData:
    shape = ", ".join(map(str, spec.output.shape))
    if (data.latents is None) == (data.images is None):
        raise BundleError(f"labels: {path} must hold exactly one of 'latents' [n, "
                          f"{spec.editing_dim}] and 'images' [n, {shape}]")
    if not data.columns:
        raise BundleError(f"labels: {path} has no label columns")
    lengths = {k: len(v) for k, v in data.columns.items()}
    n = next(iter(lengths.values()))
    if data.latents is not None and data.latents.shape != (n, spec.editing_dim):
        raise BundleError(f"labels: 'latents' has shape {list(data.latents.shape)}, expected "
                          f"[{n}, {spec.editing_dim}]")
    if data.images is not None and data.images.shape != (n, *spec.output.shape):
        raise BundleError(f"labels: 'images' has shape {list(data.images.shape)}, expected "
                          f"[{n}, {shape}]")
    for name, value in data.columns.items():
        if value.shape != (n,) or not np.all(np.isfinite(value)):
            raise BundleError(f"labels: column {name!r} must be {n} finite numbers")
    if n < 4:
        raise BundleError(f"labels: {n} rows are too few to fit a direction")
    if spec.condition is not None:
        if data.condition is None or data.condition.shape != (n,):
            raise BundleError(f"labels: the bundle is conditional; {path} needs a 'condition' "
                              f"column of {n} class indices")
        if data.condition.min() < 0 or data.condition.max() >= spec.num_classes:
            raise BundleError(f"labels: 'condition' must be in 0..{spec.num_classes - 1}")
    return data
