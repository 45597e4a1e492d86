"""Typed results from response messages, and their PIL helpers (to_pil, grid)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentserve.client import DirectionInfo, ModelSummary, ResolvedModel
from latentserve.client.images import to_uint8
from latentserve.client.results import (
    encode_result_from_proto,
    generate_result_from_proto,
    model_info_from_proto,
    model_summary_from_proto,
)
from latentserve.core.tensors import TensorError, to_tensor
from latentserve.v1 import generator_pb2 as pb

MODEL = pb.ResolvedModel(name="sprites-vae", version=3, alias="production")


def _response(
    images: np.ndarray | None = None, png: list[bytes] | None = None, n: int = 4
) -> pb.GenerateResponse:
    resp = pb.GenerateResponse(
        model=MODEL, latents=to_tensor(np.zeros((n, 10), np.float32)), png=png or [], offset=16
    )
    if images is not None:
        resp.images.CopyFrom(to_tensor(images))
    return resp


def test_float_images_use_the_output_range() -> None:
    images = np.stack([np.full((1, 2, 3), v, np.float32) for v in (-1.0, 0.0, 1.0, 5.0)])
    out = generate_result_from_proto(_response(images), output_range=(-1.0, 1.0))
    assert out.model == ResolvedModel("sprites-vae", 3, "production")
    assert out.images is not None
    assert (len(out), out.latents.shape, out.images.shape, out.offset) == (
        4,
        (4, 10),
        (4, 1, 2, 3),
        16,
    )
    pil = out.to_pil()
    assert [p.mode for p in pil] == ["L"] * 4 and pil[0].size == (3, 2)  # (W, H)
    assert [p.getpixel((0, 0)) for p in pil] == [0, 128, 255, 255]  # clipped above the range
    assert str(out.model) == "sprites-vae:3 (@production)"


def test_float_images_without_a_range_explain_what_is_missing() -> None:
    out = generate_result_from_proto(_response(np.zeros((4, 1, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="output range"):
        out.to_pil()


def test_uint8_rgb_and_grid_layout() -> None:
    images = np.zeros((5, 3, 2, 2), np.uint8)
    for i in range(5):
        images[i, 0] = 50 * i  # red channel encodes the item
    out = generate_result_from_proto(_response(images, n=5))
    sheet = out.grid(ncols=3, padding=1)
    assert sheet.mode == "RGB" and sheet.size == (3 * 2 + 2, 2 * 2 + 1)
    assert sheet.getpixel((0, 0)) == (0, 0, 0)
    assert sheet.getpixel((3, 0)) == (50, 0, 0)  # item 1: row 0, column 1
    assert sheet.getpixel((3, 3)) == (200, 0, 0)  # item 4: row 1, column 1
    assert out.grid().size == (3 * 2, 2 * 2)  # default: ceil(sqrt(5)) = 3 columns


def test_png_output() -> None:
    def png(v: int) -> bytes:
        buf = io.BytesIO()
        Image.new("L", (2, 2), v).save(buf, format="PNG")
        return buf.getvalue()

    out = generate_result_from_proto(_response(png=[png(10), png(20)], n=2))
    assert out.images is None and len(out.png) == 2
    assert [p.getpixel((1, 1)) for p in out.to_pil()] == [10, 20]
    assert out.grid(ncols=1).size == (2, 4)


def test_latents_only_has_no_pictures() -> None:
    out = generate_result_from_proto(_response())
    assert out.images is None and out.png == []
    with pytest.raises(ValueError, match="no images"):
        out.to_pil()


def test_malformed_response_tensors_name_the_field() -> None:
    resp = _response()
    resp.latents.shape[:] = [4, 11]
    with pytest.raises(TensorError, match=r"latents\.data has 160 bytes"):
        generate_result_from_proto(resp)
    resp = _response(np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(TensorError, match=r"images\.shape must have 4 dimensions"):
        generate_result_from_proto(resp)


def test_encode_result() -> None:
    resp = pb.EncodeResponse(model=MODEL, latents=to_tensor(np.ones((2, 10), np.float32)))
    out = encode_result_from_proto(resp)
    assert len(out) == 2 and out.latents.dtype == np.float32 and out.model.version == 3


def test_model_info_mirrors_the_message() -> None:
    msg = pb.ModelInfo(
        model=pb.ResolvedModel(name="digits-cvae", version=2),
        latent_dim=8,
        prior="normal",
        output_shape=[1, 32, 32],
        output_min=0.0,
        output_max=1.0,
        has_encoder=True,
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        max_batch_size=64,
        directions=[
            pb.DirectionInfo(
                name="thickness", method="pca", unit="1 std", factor="thickness", sigma=1.5
            )
        ],
        metrics={"b": 2.0, "a": 1.0},
        aliases=["production", "staging"],
        description="class-conditional VAE on digits",
    )
    info = model_info_from_proto(msg)
    assert info.model == ResolvedModel("digits-cvae", 2, "")
    assert (info.latent_dim, info.output_shape, info.output_range) == (8, (1, 32, 32), (0.0, 1.0))
    assert info.is_conditional and info.num_classes == 10 and info.class_names[3] == "3"
    assert info.directions[0] == DirectionInfo("thickness", "pca", "1 std", "thickness", 1.5)
    assert info.direction("thickness").sigma == 1.5
    with pytest.raises(KeyError, match=r"no direction 'slant'; it has \['thickness'\]"):
        info.direction("slant")
    assert list(info.metrics) == ["a", "b"] and info.aliases == ("production", "staging")
    assert info.description.startswith("class-conditional")


def test_model_summary() -> None:
    msg = pb.ModelSummary(
        name="m", versions=[1, 2], aliases={"production": 2, "a": 1}, loaded_version=2
    )
    assert model_summary_from_proto(msg) == ModelSummary("m", (1, 2), {"a": 1, "production": 2}, 2)


def test_to_uint8_mapping() -> None:
    x = np.array([-1.0, -0.5, 0.0, 1.0, np.nan], np.float32)
    assert to_uint8(x, (-1.0, 1.0)).tolist() == [0, 64, 128, 255, 0]
    with pytest.raises(ValueError, match="lo < hi"):
        to_uint8(x, (1.0, 1.0))
