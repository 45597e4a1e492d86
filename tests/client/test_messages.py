"""Request messages built from SDK arguments, and the argument errors caught before sending."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentserve.client import messages as m
from latentserve.client.refs import ModelRef
from latentserve.core.tensors import from_tensor
from latentserve.v1 import generator_pb2 as pb

REF = ModelRef("sprites-vae", alias="production")


def test_sample_request() -> None:
    req = m.sample_request(
        REF, n=8, seed=2**64 - 1, truncation_psi=0.7, class_labels_=3, output="png"
    )
    assert (req.model.name, req.model.alias, req.n, req.seed) == (
        "sprites-vae",
        "production",
        8,
        2**64 - 1,
    )
    assert req.HasField("truncation_psi") and req.truncation_psi == pytest.approx(0.7)
    assert list(req.class_labels) == [3] and req.output == pb.OUTPUT_FORMAT_PNG
    plain = m.sample_request(REF, n=1, seed=0, truncation_psi=None, class_labels_=None, output=None)
    assert not plain.HasField("truncation_psi") and plain.output == pb.OUTPUT_FORMAT_FLOAT32


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n": -1}, ValueError, "n must be between 0 and 4294967295, got -1"),
        ({"n": 2.5}, TypeError, "n must be an integer, got float"),
        ({"n": True}, TypeError, "n must be an integer"),
        ({"seed": 2**64}, ValueError, "seed must be between 0 and"),
        ({"class_labels_": [0, 1.5]}, TypeError, r"class_labels\[1\] must be an integer"),
        ({"class_labels_": [2**31]}, ValueError, r"class_labels\[0\] is out of int32 range"),
        ({"output": "jpeg"}, ValueError, "output must be one of"),
        ({"output": 9}, ValueError, "output must be one of"),
    ],
)
def test_sample_argument_errors(kwargs: dict[str, object], error: type, message: str) -> None:
    args: dict[str, object] = {
        "n": 1,
        "seed": 0,
        "truncation_psi": None,
        "class_labels_": None,
        "output": None,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        m.sample_request(REF, **args)  # type: ignore[arg-type]


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


def test_interpolate_from_seeds_or_latents() -> None:
    req = m.interpolate_request(
        REF,
        seeds=[1, 2, 3],
        latents=None,
        steps=8,
        method="lerp",
        truncation_psi=0.5,
        class_labels_=None,
        output="uint8",
    )
    assert list(req.keyframes.seeds.seeds) == [1, 2, 3]
    assert req.keyframes.seeds.truncation_psi == 0.5
    assert (req.steps, req.method) == (8, pb.INTERPOLATION_METHOD_LERP)
    z = np.random.default_rng(0).standard_normal((2, 10))
    req = m.interpolate_request(
        REF,
        seeds=None,
        latents=z,
        steps=4,
        method=None,
        truncation_psi=None,
        class_labels_=[1],
        output=None,
    )
    np.testing.assert_array_equal(from_tensor(req.keyframes.latents), z.astype(np.float32))


@pytest.mark.parametrize(
    ("seeds", "latents", "psi", "message"),
    [
        (None, None, None, "exactly one of seeds= or latents="),
        ([1], np.zeros((2, 3)), None, "exactly one of seeds= or latents="),
        (None, np.zeros(3), None, r"latents must be a \[k, N\] array, got shape \(3,\)"),
        (None, np.zeros((2, 3)), 0.5, "truncation_psi applies to seeds="),
        ([1, -2], None, None, r"seeds\[1\] must be between 0 and"),
    ],
)
def test_latent_source_errors(seeds: object, latents: object, psi: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        m.latent_source(seeds, latents, psi)  # type: ignore[arg-type]


def test_edit_by_name_and_by_vector() -> None:
    req = m.edit_request(
        REF,
        seeds=[1, 2],
        latents=None,
        direction="scale",
        strengths=[-2, -1, 0, 1, 2],
        conditional_on="pos_x",
        truncation_psi=None,
        class_labels_=None,
        output=None,
    )
    assert req.WhichOneof("direction") == "direction_name" and req.direction_name == "scale"
    assert list(req.strengths) == [-2, -1, 0, 1, 2] and list(req.conditional_on) == ["pos_x"]
    req = m.edit_request(
        REF,
        seeds=None,
        latents=np.zeros((1, 4)),
        direction=np.ones(4),
        strengths=np.array([0.5]),
        conditional_on=(),
        truncation_psi=None,
        class_labels_=None,
        output="latents",
    )
    assert req.WhichOneof("direction") == "direction_vector"
    assert from_tensor(req.direction_vector).tolist() == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"direction vector must be 1-D \[N\]"):
        m.edit_request(
            REF,
            seeds=[1],
            latents=None,
            direction=np.ones((2, 2)),
            strengths=[1],
            conditional_on=(),
            truncation_psi=None,
            class_labels_=None,
            output=None,
        )


def _png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_encode_inputs() -> None:
    floats = np.zeros((2, 1, 4, 4), np.float32)
    req = m.encode_request(REF, images=floats, class_labels_=[0, 1])
    assert req.WhichOneof("input") == "images" and list(req.class_labels) == [0, 1]
    assert list(req.images.shape) == [2, 1, 4, 4]

    pngs = [_png(0), _png(255)]
    req = m.encode_request(REF, images=pngs, class_labels_=None)
    assert req.WhichOneof("input") == "png" and list(req.png.images) == pngs

    req = m.encode_request(REF, images=[Image.new("L", (4, 4), 7)], class_labels_=None)
    assert Image.open(io.BytesIO(req.png.images[0])).getpixel((0, 0)) == 7

    pixels = np.full((1, 1, 4, 4), 200, np.uint8)
    req = m.encode_request(REF, images=pixels, class_labels_=None)
    assert Image.open(io.BytesIO(req.png.images[0])).getpixel((3, 3)) == 200

    assert m.encode_request(REF, images=[], class_labels_=None).WhichOneof("input") == "png"
    with pytest.raises(ValueError, match=r"images must be an \[n, C, H, W\] array"):
        m.encode_request(REF, images=np.zeros((4, 4), np.float32), class_labels_=None)
    with pytest.raises(TypeError, match=r"images\[1\] must be PNG bytes or a PIL image"):
        m.encode_request(REF, images=[_png(0), "x.png"], class_labels_=None)


def test_decode_request() -> None:
    req = m.decode_request(REF, latents=[[0.0, 1.0]], class_labels_=None, output="uint8")
    assert list(req.latents.shape) == [1, 2] and req.output == pb.OUTPUT_FORMAT_UINT8
    with pytest.raises(ValueError, match=r"latents must be an \[n, N\] array"):
        m.decode_request(REF, latents=[0.0, 1.0], class_labels_=None, output=None)
