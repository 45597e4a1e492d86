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

The reader has the bundle loader's guards: only regular files are opened (a FIFO or device is
refused, never waited on), a file's size is bounded before it is read, an `.npz`'s declared
sizes (and each array header's shape) are checked before anything is inflated, and an image
must be a PNG whose header states the bundle's size before a pixel is decoded (no other image
format is ever opened).
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from latentserve.core.arrays import F32, F64, I64
from latentserve.registry.bundle.spec import BundleError, BundleSpec

RESERVED = frozenset({"latents", "images", "condition", "image"})
MAX_ROWS = 200_000
MAX_FILE_BYTES = 1 << 30
"""Largest labels file (.npz or .csv) read."""
MAX_INFLATED_BYTES = 2 << 30
"""Most bytes an .npz's arrays may declare in all (a 3 MB file can inflate to gigabytes)."""
MAX_MEMBERS = 256
"""Most arrays an .npz may hold."""
MAX_IMAGE_BYTES = 64 << 20
"""Largest PNG file a .csv may name."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sII")


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
    if path.suffix not in (".npz", ".csv"):
        raise BundleError(f"labels: {path} must be a .npz or .csv file")
    raw = read_regular(path, MAX_FILE_BYTES, "labels")
    data = _read_npz(path, raw) if path.suffix == ".npz" else _read_csv(path, raw, spec)
    return _check(path, data, spec)


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes. Opened without
    blocking, then checked on the open descriptor: a FIFO or device is refused, not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise BundleError(f"{what}: cannot open {path} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{what}: {path} is not a regular file")
        if info.st_size > limit:
            raise BundleError(f"{what}: {path} has {info.st_size} bytes, over the limit of "
                              f"{limit}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise BundleError(f"{what}: {path} grew past the limit of {limit} bytes")
    return data


def _read_npz(path: Path, raw: bytes) -> LabelData:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise BundleError(f"labels: {path} holds {len(members)} arrays, over "
                                  f"{MAX_MEMBERS}")
            declared = sum(info.file_size for info in members)
            if declared > MAX_INFLATED_BYTES:
                raise BundleError(f"labels: {path} declares {declared} bytes uncompressed, over "
                                  f"the limit of {MAX_INFLATED_BYTES}; refusing to decompress")
            arrays = {info.filename.removesuffix(".npy"): _npy(archive.read(info), path)
                      for info in members}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
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


def _npy(data: bytes, path: Path) -> npt.NDArray[np.generic]:
    """One .npy member; its header must describe no more bytes than it carries."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise BundleError(f"labels: {path}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise BundleError(f"labels: {path}: object arrays are not allowed")
    body = data[stream.tell():]
    if math.prod(shape) * dtype.itemsize != len(body):
        raise BundleError(f"labels: {path}: an array header declares shape {list(shape)[:8]}, "
                          f"which its {len(body)} bytes do not hold")
    array = np.frombuffer(body, dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()  # writable, and not a view of the archive's bytes


def _read_csv(path: Path, raw: bytes, spec: BundleSpec) -> LabelData:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BundleError(f"labels: {path} is not UTF-8 text") from None
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BundleError(f"labels: {path} is not a readable .csv ({exc})") from None
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
    blob = read_regular(path, MAX_IMAGE_BYTES, "labels image")
    if not blob.startswith(PNG_SIGNATURE) or len(blob) < len(PNG_SIGNATURE) + _IHDR.size:
        raise BundleError(f"labels: image {path} is not a PNG (only PNG images are read)")
    _length, kind, width, height = _IHDR.unpack_from(blob, len(PNG_SIGNATURE))
    if kind != b"IHDR":
        raise BundleError(f"labels: image {path} is not a readable PNG (no IHDR header)")
    if (height, width) != (h, w):  # from the header: nothing decoded yet
        raise BundleError(f"labels: image {path} is {width}×{height}, the bundle's images are "
                          f"{w}×{h}")
    try:
        with Image.open(io.BytesIO(blob), formats=["PNG"]) as img:
            pixels = np.asarray(img.convert("L" if c == 1 else "RGB"), np.float32) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
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
