"""Requests built from the public methods' arguments and results parsed from responses, with
no server: the plain functions Client and AsyncClient share."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentserve.client import ModelRef, ResolvedModel
from latentserve.client import wire as w
from latentserve.core.tensors import from_tensor, to_tensor
from latentserve.v1 import generator_pb2 as pb


def test_model_ref_forms() -> None:
    assert w.model_ref("sprites-vae@staging") == pb.ModelRef(name="sprites-vae", alias="staging")
    assert w.model_ref("sprites-vae", version=3) == pb.ModelRef(name="sprites-vae", version=3)
    assert w.model_ref(ResolvedModel("m", 2, "production")) == pb.ModelRef(name="m", version=2)
    with pytest.raises(ValueError, match="give version= or alias=, not both"):
        w.model_ref("m", version=1, alias="a")


def test_sample_request() -> None:
    req = w.sample_request(ModelRef("sprites-vae", alias="production"), n=8, seed=2**64 - 1,
                           truncation_psi=0.7, class_labels=3, output="png")
    assert (req.model.name, req.model.alias, req.n, req.seed) == (
        "sprites-vae", "production", 8, 2**64 - 1)
    assert req.HasField("truncation_psi") and req.truncation_psi == pytest.approx(0.7)
    assert list(req.class_labels) == [3] and req.output == pb.OUTPUT_FORMAT_PNG
    plain = w.sample_request("m")
    assert (plain.n, plain.seed, plain.output) == (1, 0, pb.OUTPUT_FORMAT_FLOAT32)
    assert not plain.HasField("truncation_psi")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n": -1}, ValueError, "n must be between 0 and 4294967295, got -1"),
        ({"n": 2.5}, TypeError, "n must be an integer, got float"),
        ({"n": True}, TypeError, "n must be an integer"),
        ({"seed": 2**64}, ValueError, "seed must be between 0 and"),
        ({"class_labels": [0, 1.5]}, TypeError, r"class_labels\[1\] must be an integer"),
        ({"class_labels": [2**31]}, ValueError, r"class_labels\[0\] is out of int32 range"),
        ({"output": "jpeg"}, ValueError, "output must be one of"),
        ({"output": 9}, ValueError, "output must be one of"),
        ({"version": 1, "alias": "a"}, ValueError, "not both"),
    ],
)
def test_sample_argument_errors(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        w.sample_request("m", **kwargs)  # type: ignore[arg-type]


def test_interpolate_from_seeds_or_latents() -> None:
    req = w.interpolate_request("m", seeds=[1, 2, 3], steps=8, method="lerp",
                                truncation_psi=0.5, output="uint8")
    assert list(req.keyframes.seeds.seeds) == [1, 2, 3]
    assert req.keyframes.seeds.truncation_psi == 0.5
    assert (req.steps, req.method, req.output) == (
        8, pb.INTERPOLATION_METHOD_LERP, pb.OUTPUT_FORMAT_UINT8)
    z = np.random.default_rng(0).standard_normal((2, 10))
    req = w.interpolate_request("m", latents=z, steps=4, class_labels=[1])
    np.testing.assert_array_equal(from_tensor(req.keyframes.latents), z.astype(np.float32))
    with pytest.raises(ValueError, match="exactly one of seeds= or latents="):
        w.interpolate_request("m")


def test_edit_by_name_and_by_vector() -> None:
    req = w.edit_request("m", seeds=[1, 2], direction="scale", strengths=[-2, -1, 0, 1, 2],
                         conditional_on="pos_x")
    assert req.WhichOneof("direction") == "direction_name" and req.direction_name == "scale"
    assert list(req.strengths) == [-2, -1, 0, 1, 2] and list(req.conditional_on) == ["pos_x"]
    req = w.edit_request("m", latents=np.zeros((1, 4)), direction=np.ones(4),
                         strengths=np.array([0.5]), output="latents")
    assert req.WhichOneof("direction") == "direction_vector"
    assert from_tensor(req.direction_vector).tolist() == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"direction vector must be 1-D \[N\]"):
        w.edit_request("m", seeds=[1], direction=np.ones((2, 2)), strengths=[1])


def _png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_encode_request() -> None:
    req = w.encode_request("m", np.zeros((2, 1, 4, 4), np.float32), class_labels=[0, 1])
    assert req.WhichOneof("input") == "images" and list(req.class_labels) == [0, 1]
    assert list(req.images.shape) == [2, 1, 4, 4]
    pngs = [_png(0), _png(255)]
    req = w.encode_request("m", pngs)
    assert req.WhichOneof("input") == "png" and list(req.png.images) == pngs
    assert w.encode_request("m", []).WhichOneof("input") == "png"


def test_decode_request() -> None:
    req = w.decode_request("m", [[0.0, 1.0]], output="uint8")
    assert list(req.latents.shape) == [1, 2] and req.output == pb.OUTPUT_FORMAT_UINT8
    with pytest.raises(ValueError, match=r"latents must be an \[n, N\] array"):
        w.decode_request("m", [0.0, 1.0])


def _response(n: int, *, value_range: tuple[float, float] | None) -> pb.GenerateResponse:
    resp = pb.GenerateResponse(
        model=pb.ResolvedModel(name="m", version=2, alias="production"),
        latents=to_tensor(np.zeros((n, 3), np.float32)),
        images=to_tensor(np.linspace(-1, 1, n * 4, dtype=np.float32).reshape(n, 1, 2, 2)),
    )
    if value_range is not None:
        resp.output_range.CopyFrom(pb.ValueRange(min=value_range[0], max=value_range[1]))
    return resp


def test_generated_reads_the_output_range_from_the_response() -> None:
    out = w.generated(_response(3, value_range=(-1.0, 1.0)))
    assert out.output_range == (-1.0, 1.0) and out.columns is None
    assert out.model == ResolvedModel("m", 2, "production")
    assert [p.getpixel((0, 0)) for p in out.to_pil()] == [0, 93, 185]
    older = w.generated(_response(3, value_range=None))  # a server without the field
    assert older.output_range is None
    with pytest.raises(ValueError, match="output range"):
        older.to_pil()


def test_grid_layouts_of_paths_and_sweeps() -> None:
    assert w.path(_response(5, value_range=(-1.0, 1.0))).columns == 5  # one row
    assert w.generated(_response(6, value_range=(-1.0, 1.0)), 3).columns == 3


def test_summaries() -> None:
    resp = pb.ListModelsResponse(models=[
        pb.ModelSummary(name="a", versions=[1], aliases={"production": 1}, loaded_version=1),
        pb.ModelSummary(name="b", versions=[1, 2]),
    ])
    assert [(s.name, s.versions) for s in w.summaries(resp)] == [("a", (1,)), ("b", (1, 2))]
