"""Single request fields from SDK arguments, and the argument errors caught before sending."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentserve.client import messages as m
from latentserve.core.tensors import from_tensor
from latentserve.v1 import generator_pb2 as pb


def test_enums_accept_names_and_values() -> None:
    assert m.output_format("UINT8") == pb.OUTPUT_FORMAT_UINT8
    assert m.output_format("latents") == pb.OUTPUT_FORMAT_LATENTS_ONLY
    assert m.output_format(pb.OUTPUT_FORMAT_PNG) == pb.OUTPUT_FORMAT_PNG
    assert m.interpolation_method("vp_lerp") == pb.INTERPOLATION_METHOD_VP_LERP
    assert m.interpolation_method(None) == pb.INTERPOLATION_METHOD_UNSPECIFIED
    assert m.interpolation_method(pb.INTERPOLATION_METHOD_LERP) == pb.INTERPOLATION_METHOD_LERP
    with pytest.raises(ValueError, match=r"method must be one of \['lerp', 'slerp', 'vp_lerp'\]"):
        m.interpolation_method("cubic")


def test_class_labels_forms() -> None:
    assert m.class_labels(None) == []
    assert m.class_labels(np.int64(4)) == [4]
    assert m.class_labels(np.arange(3)) == [0, 1, 2]
    assert m.class_labels(range(2)) == [0, 1]


@pytest.mark.parametrize(
    ("seeds", "latents", "psi", "message"),
    [
        (None, None, None, "exactly one of seeds= or latents="),
        ([1], np.zeros((2, 3)), None, "exactly one of seeds= or latents="),
        (None, np.zeros(3), None,
         r"latents must be an \[n, N\] array \(or shaped \[n, ...\]\), got shape \(3,\)"),
        (None, np.zeros((2, 3)), 0.5, "truncation_psi applies to seeds="),
        ([1, -2], None, None, r"seeds\[1\] must be between 0 and"),
    ],
)
def test_latent_source_errors(seeds: object, latents: object, psi: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        m.latent_source(seeds, latents, psi)  # type: ignore[arg-type]


def _png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_image_input_forms() -> None:
    tensor = m.image_input(np.zeros((2, 1, 4, 4), np.float32))
    assert isinstance(tensor, pb.Tensor) and from_tensor(tensor).shape == (2, 1, 4, 4)
    assert m.image_input(_png(3)) == [_png(3)]
    [pil] = m.image_input([Image.new("L", (4, 4), 7)])
    assert isinstance(pil, bytes) and Image.open(io.BytesIO(pil)).getpixel((0, 0)) == 7
    [pixels] = m.image_input(np.full((1, 1, 4, 4), 200, np.uint8))
    assert isinstance(pixels, bytes) and Image.open(io.BytesIO(pixels)).getpixel((3, 3)) == 200
    with pytest.raises(ValueError, match=r"images must be an \[n, C, H, W\] array"):
        m.image_input(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match=r"images\[1\] must be PNG bytes or a PIL image"):
        m.image_input([_png(0), "x.png"])  # type: ignore[list-item]
