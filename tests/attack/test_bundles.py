"""Attack regressions, bundle side (issue 15 item 6): a compressed-array bomb in directions.npz
is refused from the zip headers, before anything is decompressed (memory measured with
tracemalloc, which sees numpy and zlib buffers; no timing)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latentserve.registry.bundle.files import Bundle, load_bundle, npz_member_limit
from latentserve.registry.bundle.spec import DIRECTIONS_FILE, SIGMA_SUFFIX, BundleError

BOMB_BYTES = 256 << 20
"""Uncompressed size of the bomb member (compresses to ~250 KB)."""


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": dtype, "fortran_order": False, "shape": shape})
    return stream.getvalue()


def _rewrite(bundle: Bundle, write_d0: Callable[[zipfile.ZipFile], None]) -> Path:
    """directions.npz of `bundle` with member d0 written by `write_d0`, the rest as they were."""
    path = bundle.root / DIRECTIONS_FILE
    with np.load(path) as npz:
        others = {k: npz[k] for k in npz.files if k != "d0"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        write_d0(archive)
        for key, value in others.items():
            archive.writestr(f"{key}.npy", _npy_bytes(value))
    return path


def _npy_bytes(value: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array(stream, value, allow_pickle=False)
    return stream.getvalue()


def _peak_while(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    error: BaseException | None = None
    try:
        fn()
    except BaseException as exc:  # returned to the test
        error = exc
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


def test_npz_bomb_is_refused_before_decompressing(tiny_bundle: Bundle) -> None:
    def bomb(archive: zipfile.ZipFile) -> None:
        zeros = bytes(1 << 20)
        with archive.open("d0.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((BOMB_BYTES // 4,)))
            for _ in range(BOMB_BYTES >> 20):
                member.write(zeros)

    path = _rewrite(tiny_bundle, bomb)
    assert path.stat().st_size < 4 << 20
    peak, error = _peak_while(lambda: load_bundle(tiny_bundle.root))
    assert isinstance(error, BundleError), error
    assert "declares" in str(error) and "refusing to decompress" in str(error)
    assert peak < 32 << 20, f"peak {peak >> 20} MiB while refusing the bomb"


def test_npy_header_shape_is_checked_before_allocating(tiny_bundle: Bundle) -> None:
    # A small member whose .npy header claims 2³⁰ floats: no 4 GiB allocation, a clear error.
    _rewrite(tiny_bundle, lambda a: a.writestr("d0.npy", _npy_header((1 << 30,)) + bytes(16)))
    peak, error = _peak_while(lambda: load_bundle(tiny_bundle.root))
    assert isinstance(error, BundleError), error
    assert "header declares shape" in str(error)
    assert peak < 32 << 20


def test_member_larger_than_it_declares_is_refused(tiny_bundle: Bundle) -> None:
    # The central directory says 200 bytes, the data inflates to 8 MiB: reading stops at 200.
    def liar(archive: zipfile.ZipFile) -> None:
        archive.writestr("d0.npy", _npy_header((2 << 20,)) + bytes(8 << 20))
        archive.filelist[-1].file_size = 200

    path = _rewrite(tiny_bundle, liar)
    with zipfile.ZipFile(path) as check:
        assert check.getinfo("d0.npy").file_size == 200
    peak, error = _peak_while(lambda: load_bundle(tiny_bundle.root))
    assert isinstance(error, BundleError), error
    assert peak < 32 << 20


def test_too_many_members_are_refused(tiny_bundle: Bundle) -> None:
    def many(archive: zipfile.ZipFile) -> None:
        archive.writestr("d0.npy", _npy_bytes(np.eye(4, dtype=np.float32)[0]))
        for i in range(100):
            archive.writestr(f"junk{i}.npy", _npy_bytes(np.zeros(1, np.float32)))

    _rewrite(tiny_bundle, many)
    with pytest.raises(BundleError, match="holds 106 arrays"):
        load_bundle(tiny_bundle.root)


def test_normal_directions_still_load(tiny_bundle: Bundle) -> None:
    loaded = load_bundle(tiny_bundle.root)
    assert set(loaded.directions) == {"d0", "pc0", "sefa0"}
    assert npz_member_limit(loaded.spec) >= 8 * loaded.spec.latent_dim
    assert all(d.name + SIGMA_SUFFIX for d in loaded.directions.values())
