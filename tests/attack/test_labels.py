"""Attack regressions, labels files (second pass, item 13): the reader behind `directions
discover` and `bundle evaluate` has the bundle loader's guards — no .npz bombs, PNG sizes read
from the header, only PNG images opened, no FIFO or device ever read."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latentserve.registry.bundle.spec import BundleError, BundleSpec
from latentserve.registry.quality import label_data
from tests.attack.test_requests import png_bomb
from tests.fixtures.tiny import build_tiny_bundle


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> BundleSpec:
    return build_tiny_bundle(tmp_path_factory.mktemp("labels") / "tiny").spec


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_npz_bomb_is_refused_from_its_directory(spec: BundleSpec, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A 3 MB .npz inflated to 3.1 GiB; here 48 MiB of zeros against a 16 MiB limit.
    monkeypatch.setattr(label_data, "MAX_INFLATED_BYTES", 16 << 20)
    zeros = _npy(np.zeros((6 << 20,), np.float64))
    path = _npz(tmp_path / "bomb.npz", {"latents": zeros, "smile": zeros})
    assert path.stat().st_size < 1 << 20
    with pytest.raises(BundleError, match="refusing to decompress"):
        label_data.read_labels(path, spec)


def test_npy_header_cannot_claim_more_than_it_holds(spec: BundleSpec, tmp_path: Path) -> None:
    lying = _npy(np.zeros(2, np.float32)).replace(b"(2,)", b"(999999999999,)".ljust(4))
    path = _npz(tmp_path / "lying.npz", {"latents": lying})
    with pytest.raises(BundleError, match=r"do not hold|not a readable"):
        label_data.read_labels(path, spec)


def test_good_npz_still_reads(spec: BundleSpec, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "good.npz"
    np.savez(path, latents=rng.standard_normal((8, spec.editing_dim)).astype(np.float32),
             smile=rng.random(8))
    data = label_data.read_labels(path, spec)
    assert data.latents is not None and data.latents.shape == (8, spec.editing_dim)
    data.latents[0, 0] = 1.0  # writable


def _csv_with_images(path: Path, images: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "smile"])
        for i, name in enumerate(images):
            writer.writerow([name, i])
    return path


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an image was opened before its header was checked")

    monkeypatch.setattr(Image, "open", refuse)


@pytest.mark.parametrize(("blob", "expected"), [
    (png_bomb(13_000, 13_000, rows_per_block=100), "13000×13000"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", "not a PNG"),
    (b"GIF89a" + bytes(64), "not a PNG"),
], ids=["png bomb", "eps", "gif"])
def test_images_are_checked_before_decoding(spec: BundleSpec, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, blob: bytes,
                                            expected: str) -> None:
    (tmp_path / "img").write_bytes(blob)
    path = _csv_with_images(tmp_path / "labels.csv", ["img"] * 4)
    _no_decoding(monkeypatch)
    with pytest.raises(BundleError, match=expected):
        label_data.read_labels(path, spec)


@pytest.mark.parametrize("where", ["labels file", "image"])
def test_fifos_are_refused_not_waited_on(spec: BundleSpec, tmp_path: Path, where: str) -> None:
    fifo = tmp_path / ("labels.csv" if where == "labels file" else "img.png")
    os.mkfifo(fifo)
    path = fifo if where == "labels file" else _csv_with_images(tmp_path / "l.csv", ["img.png"])
    with pytest.raises(BundleError, match="not a regular file"):
        label_data.read_labels(path, spec)
