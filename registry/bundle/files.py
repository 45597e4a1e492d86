"""Generator bundles on disk: load and validate one, or write one, with its content hash.

A bundle is a folder holding `latentserve.json`, `decoder.onnx`, optional `mapping.onnx`
(two-stage generators) and `encoder.onnx`, `directions.npz` and `preview.png` — plain files,
never pickles. `load_bundle` checks the
spec schema, the files, the ONNX IO against the spec and the direction vectors (README,
"Generator bundles") and raises `BundleError` naming the file or field at fault::

    bundle = load_bundle(Path("generators/zoo/sprites-vae"))
    bundle.decoder_path, bundle.directions["pc0"].sigma, bundle.content_hash
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32
from latentserve.registry.bundle.onnx_checks import check_decoder, check_encoder, check_mapping
from latentserve.registry.bundle.spec import (
    DIRECTIONS_FILE,
    PREVIEW_FILE,
    SIGMA_SUFFIX,
    SPEC_FILE,
    BundleError,
    BundleSpec,
    DirectionSpec,
)

UNIT_NORM_TOLERANCE = 1e-3
"""A direction vector is accepted as unit-norm when |‖d‖ − 1| ≤ this."""
PICKLE_SUFFIXES = (".pkl", ".pickle")
NPY_HEADER_ALLOWANCE = 4096
"""Bytes allowed for a .npy member's header (plus a scalar) on top of its vector data."""
MLMODEL_FILE = "MLmodel"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Direction:
    """One named latent direction: a unit vector, its σ (strength 1.0) and its spec entry."""

    name: str
    vector: F32
    sigma: float
    spec: DirectionSpec


@dataclass(frozen=True)
class Bundle:
    """A validated bundle on disk. Build it with `load_bundle` or `write_bundle`."""

    root: Path
    spec: BundleSpec
    directions: dict[str, Direction]
    truncation_center: F32
    """Center of truncation in the editing space: the prior mean for Z (0 for N(0, I)), w̄ for
    W (of size w_dim, shared by every W+ layer)."""
    content_hash: str

    @property
    def decoder_path(self) -> Path:
        """The decoder ONNX file."""
        return self.root / self.spec.decoder.file

    @property
    def mapping_path(self) -> Path | None:
        """The mapping ONNX file (z → w), or None for one-stage generators."""
        return self.root / self.spec.mapping.file if self.spec.mapping else None

    @property
    def encoder_path(self) -> Path | None:
        """The encoder ONNX file, or None for decoder-only generators."""
        return self.root / self.spec.encoder.file if self.spec.encoder else None


def load_bundle(root: Path) -> Bundle:
    """Read and validate the bundle in `root`; raise `BundleError` naming the file/field at fault.

    Example::

        bundle = load_bundle(Path("/cache/sprites-vae/3"))
    """
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory does not exist")
    files = _bundle_files(root)
    pickles = [rel for rel in files if rel.endswith(PICKLE_SUFFIXES)]
    if SPEC_FILE not in files and (pickles or MLMODEL_FILE in files):
        raise BundleError(
            f"{root}: this is an MLflow pyfunc/pickle model; latentserve loads only bundles "
            f"with {SPEC_FILE} and plain ONNX files, never pickles"
        )
    if pickles:
        raise BundleError(
            f"{root / pickles[0]}: pickle files are not allowed in a bundle; latentserve loads "
            "only plain ONNX/JSON/NPZ/PNG files"
        )
    if SPEC_FILE not in files:
        raise BundleError(f"{root / SPEC_FILE}: spec file is missing")
    spec = BundleSpec.from_file(root / SPEC_FILE)
    _check_metric_names(root, spec)

    decoder = _inside(root, spec.decoder.file, "decoder.file")
    check_decoder(root, decoder, spec)
    if spec.mapping is not None:
        mapping = _inside(root, spec.mapping.file, "mapping.file")
        check_mapping(root, mapping, spec)
    if spec.encoder is not None:
        encoder = _inside(root, spec.encoder.file, "encoder.file")
        check_encoder(root, encoder, spec)

    preview = root / PREVIEW_FILE
    if preview.is_file():
        with preview.open("rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                raise BundleError(f"{preview}: not a PNG image")

    center = np.full(spec.editing_dim, spec.prior.mean if spec.mapping is None else 0.0,
                     np.float32)  # Z's center is the prior mean
    if spec.truncation_center is not None:
        center = np.asarray(spec.truncation_center, np.float32)
        if not np.all(np.isfinite(center)):
            raise BundleError(f"{root / SPEC_FILE}: truncation_center has non-finite values")
    return Bundle(
        root=root,
        spec=spec,
        directions=_load_directions(root, spec),
        truncation_center=center,
        content_hash=content_hash(root),
    )


def write_bundle(
    out_dir: Path,
    spec: BundleSpec,
    *,
    decoder: Path | bytes,
    mapping: Path | bytes | None = None,
    encoder: Path | bytes | None = None,
    directions: Mapping[str, tuple[F32, float]] | None = None,
    preview_png: bytes | None = None,
) -> Bundle:
    """Write a bundle to `out_dir` (replacing a previous bundle there), validate it, return it.

    The files are written to a temporary sibling folder, validated with `load_bundle`, then
    moved into place, so `out_dir` never holds a half-written or invalid bundle.

    Example::

        write_bundle(Path("zoo/my-vae"), spec, decoder=onnx_bytes,
                     directions={"pc0": (unit_vector, 1.7)}, preview_png=png)
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or _is_foreign_dir(out_dir)):
        raise BundleError(f"{out_dir}: exists and is not a bundle; refusing to overwrite it")
    if (encoder is None) != (spec.encoder is None):
        raise BundleError(f"{SPEC_FILE}: encoder must be set in the spec exactly when an encoder "
                          "file is given")
    if (mapping is None) != (spec.mapping is None):
        raise BundleError(f"{SPEC_FILE}: mapping must be set in the spec exactly when a mapping "
                          "file is given")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (staging / SPEC_FILE).write_text(spec.to_json())
        _put(staging, spec.decoder.file, "decoder.file", decoder)
        if spec.mapping is not None and mapping is not None:
            _put(staging, spec.mapping.file, "mapping.file", mapping)
        if spec.encoder is not None and encoder is not None:
            _put(staging, spec.encoder.file, "encoder.file", encoder)
        if directions:
            arrays: dict[str, npt.NDArray[np.float32]] = {}
            for name, (vector, sigma) in directions.items():
                arrays[name] = np.asarray(vector, np.float32)
                arrays[name + SIGMA_SUFFIX] = np.asarray(sigma, np.float32)
            with (staging / DIRECTIONS_FILE).open("wb") as fh:
                np.savez(fh, allow_pickle=False, **arrays)
        if preview_png is not None:
            (staging / PREVIEW_FILE).write_bytes(preview_png)
        bundle = load_bundle(staging)
        _replace_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataclasses.replace(bundle, root=out_dir)


def bundles_in(folder: Path) -> list[Path]:
    """The bundles in a folder (e.g. the zoo): its subfolders holding a spec file, by name."""
    return sorted((d for d in folder.iterdir() if (d / SPEC_FILE).is_file()),
                  key=lambda d: d.name)


def content_hash(root: Path) -> str:
    """sha256 over the bundle's files: relative names and bytes, in sorted name order.

    Hidden files (names starting with '.') are not part of a bundle and are skipped.
    """
    digest = hashlib.sha256()
    for rel in _bundle_files(root):
        path = root / rel
        digest.update(rel.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------- files and paths


def _bundle_files(root: Path) -> list[str]:
    """Sorted relative POSIX names of the regular files in `root` (recursive, no hidden)."""
    real_root = root.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not path.resolve().is_relative_to(real_root):
                raise BundleError(f"{path}: links outside the bundle directory")
            if path.is_file():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _is_foreign_dir(path: Path) -> bool:
    return any(path.iterdir()) and not (path / SPEC_FILE).is_file()


def _inside(root: Path, rel: str, field: str) -> Path:
    """`root / rel`, refusing absolute paths, `..` and anything resolving outside `root`."""
    candidate = Path(rel)
    if candidate.is_absolute() or ".." in candidate.parts or rel.strip() == "":
        raise BundleError(f"{root / SPEC_FILE}: {field} {rel!r} must be a relative path inside "
                          "the bundle (no absolute paths, no '..')")
    path = root / candidate
    if not path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root / SPEC_FILE}: {field} {rel!r} resolves outside the bundle")
    if not path.is_file():
        raise BundleError(f"{path}: file named by {field} is missing")
    return path


def _put(root: Path, rel: str, field: str, data: Path | bytes) -> None:
    candidate = Path(rel)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise BundleError(f"{SPEC_FILE}: {field} {rel!r} must be a relative path inside the bundle")
    target = root / candidate
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        shutil.copyfile(data, target)


def _replace_dir(staging: Path, out_dir: Path) -> None:
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_metric_names(root: Path, spec: BundleSpec) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./ ")
    for name in spec.metrics:
        if not name or not set(name) <= allowed:
            raise BundleError(f"{root / SPEC_FILE}: metrics.{name}: metric names may use only "
                              "letters, digits, '_', '-', '.', '/' and spaces")


# ---------------------------------------------------------------- directions


def npz_member_limit(spec: BundleSpec) -> int:
    """Largest uncompressed size accepted for one member of directions.npz: a float64 vector
    of the editing space's size plus room for the .npy header."""
    return 8 * spec.editing_dim + NPY_HEADER_ALLOWANCE


def _read_npz(path: Path, spec: BundleSpec) -> dict[str, npt.NDArray[np.generic]]:
    """The arrays of directions.npz, every size checked before anything is inflated.

    The zip's central directory declares each member's uncompressed size: members over
    `npz_member_limit` and archives with more members than the spec can use are refused
    without decompressing (a 1.5 MB file can hold gigabytes of zeros). Reads stop at the
    declared size, and each .npy header's shape is checked against the bytes it has before
    an array is allocated.
    """
    limit = npz_member_limit(spec)
    most = 2 * len(spec.directions) + 16  # a few extra: the key check names them
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > most:
                raise BundleError(f"{path}: holds {len(members)} arrays; the spec's "
                                  f"{len(spec.directions)} directions need "
                                  f"{2 * len(spec.directions)}")
            for info in members:
                if info.file_size > limit:
                    raise BundleError(
                        f"{path}: member {info.filename[:64]!r} declares {info.file_size} bytes "
                        f"uncompressed, over the {limit} bytes a direction of length "
                        f"{spec.editing_dim} needs; refusing to decompress it")
            arrays = {}
            for info in members:
                key = info.filename.removesuffix(".npy")
                arrays[key] = _npy(archive.read(info), f"{path}: member {key[:64]!r}")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise BundleError(f"{path}: not a readable .npz of plain arrays ({exc})") from None
    return arrays


def _npy(data: bytes, where: str) -> npt.NDArray[np.generic]:
    """One .npy member's array; its header must describe no more bytes than it has."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise BundleError(f"{where}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise BundleError(f"{where}: object arrays are not allowed")
    needed = math.prod(shape) * dtype.itemsize
    if needed > len(data) - stream.tell():
        raise BundleError(f"{where}: header declares shape {list(shape)} ({needed} bytes) but "
                          f"only {len(data) - stream.tell()} bytes follow")
    stream.seek(0)
    array: npt.NDArray[np.generic] = np.lib.format.read_array(stream, allow_pickle=False)
    return array


def _load_directions(root: Path, spec: BundleSpec) -> dict[str, Direction]:
    path = root / DIRECTIONS_FILE
    if not spec.directions and not path.exists():
        return {}
    if not path.is_file():
        raise BundleError(f"{path}: directions file is missing (spec lists "
                          f"{[d.name for d in spec.directions]})")
    arrays = _read_npz(path, spec)
    want = {d.name for d in spec.directions} | {d.name + SIGMA_SUFFIX for d in spec.directions}
    if set(arrays) != want:
        extra, missing = sorted(set(arrays) - want), sorted(want - set(arrays))
        raise BundleError(f"{path}: keys do not match spec.directions (missing: {missing}, "
                          f"unexpected: {extra})")
    found: dict[str, Direction] = {}
    for dspec in spec.directions:
        vector, sigma = arrays[dspec.name], arrays[dspec.name + SIGMA_SUFFIX]
        where = f"{path}: direction {dspec.name!r}"
        if vector.dtype.kind != "f" or vector.shape != (spec.editing_dim,):
            raise BundleError(f"{where} must be a float vector of length {spec.editing_dim} "
                              f"(the {spec.editing_space} editing space), got "
                              f"{vector.dtype} {list(vector.shape)}")
        vec = vector.astype(np.float32)
        if not np.all(np.isfinite(vec)):
            raise BundleError(f"{where} has non-finite values")
        norm = float(np.linalg.norm(vec.astype(np.float64)))
        if abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
            raise BundleError(f"{where} is not unit-norm (‖d‖ = {norm:.6g})")
        if sigma.dtype.kind not in "fiu" or sigma.size != 1:
            raise BundleError(f"{where}: {dspec.name + SIGMA_SUFFIX} must be one number")
        sig = float(sigma.reshape(()))
        if not np.isfinite(sig) or sig <= 0:
            raise BundleError(f"{where}: sigma must be finite and > 0, got {sig}")
        vec.setflags(write=False)
        found[dspec.name] = Direction(dspec.name, vec, sig, dspec)
    return found
