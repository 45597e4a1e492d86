"""Attack regressions, explorer uploads (second pass, item 9): an upload is bounded in bytes and
pixels before it is decoded, only pictures are opened, and the file does not stay behind."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latentserve.explore import uploads
from tests.attack.test_requests import png_bomb


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the upload was decoded before its size was checked")

    Image.init()  # PIL's plugins build prototype images once; not the upload's pixels
    monkeypatch.setattr(Image.Image, "convert", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


@pytest.mark.parametrize(("blob", "expected"), [
    (png_bomb(13_000, 13_000, colour=6, rows_per_block=100), "13000×13000 pixels"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", "not a PNG, JPEG or WebP"),
], ids=["13000² PNG", "EPS"])
def test_upload_is_refused_before_decoding_and_deleted(tmp_path: Path, blob: bytes,
                                                       expected: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Gradio decoded every upload to an array first: +1.6 to +2.3 GiB per 0.5 MB PNG, kept.
    path = tmp_path / "upload"
    path.write_bytes(blob)
    _no_decoding(monkeypatch)
    with pytest.raises(ValueError, match=expected):
        uploads.read_upload(path)
    assert not path.exists()


def test_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1024)
    path = tmp_path / "big.png"
    path.write_bytes(bytes(4096))
    with pytest.raises(ValueError, match="at most 0 MB"):
        uploads.read_upload(path)
    assert not path.exists()


def test_picture_is_read_and_deleted(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    pixels = uploads.read_upload(path)
    assert pixels.shape == (8, 8, 3) and int(pixels[0, 0, 0]) == 200
    assert not path.exists()
