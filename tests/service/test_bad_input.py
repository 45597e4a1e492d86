"""Every kind of bad input gets a specific status and a field-naming message; the server lives."""

from __future__ import annotations

import math
from typing import Any

import grpc
import numpy as np
import pytest

from latentserve.core.tensors import to_tensor
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import field_violations

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def seeds(*values: int, psi: float | None = None) -> pb.LatentSource:
    extra = {} if psi is None else {"truncation_psi": psi}
    return pb.LatentSource(seeds=pb.SeedList(seeds=list(values), **extra))


def raw_tensor(shape: list[int], data: bytes, dtype: int = pb.D_TYPE_FLOAT32) -> pb.Tensor:
    return pb.Tensor(dtype=dtype, shape=shape, data=data)


def z(n: int, dim: int = 4) -> pb.Tensor:
    return to_tensor(np.zeros((n, dim), np.float32))


CASES: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    ("n zero", "Sample", pb.SampleRequest(n=0), INVALID, "n"),
    ("n over limit", "Sample", pb.SampleRequest(n=100_000), INVALID, "n"),
    ("psi zero", "Sample", pb.SampleRequest(n=1, truncation_psi=0.0), INVALID, "truncation_psi"),
    ("psi negative", "Sample", pb.SampleRequest(n=1, truncation_psi=-1), INVALID,
     "truncation_psi"),
    ("psi nan", "Sample", pb.SampleRequest(n=1, truncation_psi=math.nan), INVALID,
     "truncation_psi"),
    ("unknown output", "Sample", pb.SampleRequest(n=1, output=42), INVALID, "output"),
    ("latents wrong dim", "Decode", pb.DecodeRequest(latents=z(2, 5)), INVALID,
     "latents.shape"),
    ("latents wrong rank", "Decode",
     pb.DecodeRequest(latents=raw_tensor([8], bytes(32))), INVALID, "latents.shape"),
    ("latents wrong dtype", "Decode",
     pb.DecodeRequest(latents=raw_tensor([2, 4], bytes(8), pb.D_TYPE_UINT8)), INVALID,
     "latents.dtype"),
    ("latents unspecified dtype", "Decode",
     pb.DecodeRequest(latents=raw_tensor([2, 4], bytes(32), pb.D_TYPE_UNSPECIFIED)), INVALID,
     "latents.dtype"),
    ("latents short data", "Decode", pb.DecodeRequest(latents=raw_tensor([2, 4], bytes(12))),
     INVALID, "latents.data"),
    ("latents nan", "Decode",
     pb.DecodeRequest(latents=to_tensor(np.full((1, 4), np.nan, np.float32))), INVALID,
     "latents.data"),
    ("latents inf", "Decode",
     pb.DecodeRequest(latents=to_tensor(np.full((1, 4), np.inf, np.float32))), INVALID,
     "latents.data"),
    ("latents empty", "Decode", pb.DecodeRequest(latents=z(0)), INVALID, "latents.shape[0]"),
    ("steps one", "Interpolate", pb.InterpolateRequest(keyframes=seeds(1, 2), steps=1), INVALID,
     "steps"),
    ("steps over limit", "Interpolate",
     pb.InterpolateRequest(keyframes=seeds(1, 2), steps=1_000_000), INVALID, "steps"),
    ("path over limit", "Interpolate",
     pb.InterpolateRequest(keyframes=seeds(*range(100)), steps=100), INVALID, "steps"),
    ("one keyframe", "Interpolate", pb.InterpolateRequest(keyframes=seeds(1), steps=4), INVALID,
     "keyframes.seeds.seeds"),
    ("one latent keyframe", "Interpolate",
     pb.InterpolateRequest(keyframes=pb.LatentSource(latents=z(1)), steps=4), INVALID,
     "keyframes.latents.shape[0]"),
    ("no keyframes", "Interpolate", pb.InterpolateRequest(steps=4), INVALID, "keyframes"),
    ("unknown method", "Interpolate",
     pb.InterpolateRequest(keyframes=seeds(1, 2), steps=4, method=9), INVALID, "method"),
    ("keyframe psi zero", "Interpolate",
     pb.InterpolateRequest(keyframes=seeds(1, 2, psi=0.0), steps=4), INVALID,
     "keyframes.seeds.truncation_psi"),
    ("strengths empty", "Edit", pb.EditRequest(base=seeds(1), direction_name="d0"), INVALID,
     "strengths"),
    ("strengths nan", "Edit",
     pb.EditRequest(base=seeds(1), direction_name="d0", strengths=[math.nan]), INVALID,
     "strengths"),
    ("no direction", "Edit", pb.EditRequest(base=seeds(1), strengths=[1]), INVALID,
     "direction"),
    ("direction vector wrong length", "Edit",
     pb.EditRequest(base=seeds(1), strengths=[1],
                    direction_vector=to_tensor(np.ones(5, np.float32))), INVALID,
     "direction_vector.shape"),
    ("direction vector zero", "Edit",
     pb.EditRequest(base=seeds(1), strengths=[1],
                    direction_vector=to_tensor(np.zeros(4, np.float32))), INVALID,
     "direction_vector"),
    ("conditional on itself", "Edit",
     pb.EditRequest(base=seeds(1), direction_name="d0", strengths=[1], conditional_on=["d0"]),
     INVALID, "conditional_on[0]"),
    ("no base", "Edit", pb.EditRequest(direction_name="d0", strengths=[1]), INVALID, "base"),
    ("edit rows over limit", "Edit",
     pb.EditRequest(base=seeds(*range(100)), direction_name="d0", strengths=[0.0] * 100),
     INVALID, "items (rows produced)"),
    ("encode wrong image shape", "Encode",
     pb.EncodeRequest(images=to_tensor(np.zeros((1, 1, 4, 4), np.float32))), INVALID,
     "images.shape"),
    ("encode corrupt png", "Encode",
     pb.EncodeRequest(png=pb.PngList(images=[b"\x89PNG\r\n\x1a\nnot really"])), INVALID,
     "png.images[0]"),
    ("encode no input", "Encode", pb.EncodeRequest(), INVALID, "input"),
    ("version zero", "Sample", pb.SampleRequest(n=1, model=pb.ModelRef(name="tiny", version=0)),
     INVALID, "model.version"),
]


@pytest.mark.parametrize(("rpc", "request_", "code", "field"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_request_names_the_field(stub: pb_grpc.GeneratorServiceStub, rpc: str,
                                         request_: Any, code: grpc.StatusCode,
                                         field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(request_, timeout=30)
    assert info.value.code() == code, info.value.details()
    fields = [f for f, _ in field_violations(info.value)]
    assert field in fields, (fields, info.value.details())
    assert info.value.details()


NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
OTHER: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    ("unknown model", "Sample", pb.SampleRequest(n=1, model=pb.ModelRef(name="nope")),
     NOT_FOUND, "nope"),
    ("unknown version", "Sample",
     pb.SampleRequest(n=1, model=pb.ModelRef(name="tiny", version=99)), NOT_FOUND, "99"),
    ("unknown alias", "Sample",
     pb.SampleRequest(n=1, model=pb.ModelRef(name="tiny", alias="canary")), NOT_FOUND,
     "canary"),
    ("unknown direction", "Edit",
     pb.EditRequest(base=seeds(1), direction_name="smile", strengths=[1]), NOT_FOUND, "smile"),
    ("unknown held direction", "Edit",
     pb.EditRequest(base=seeds(1), direction_name="d0", strengths=[1], conditional_on=["nah"]),
     NOT_FOUND, "nah"),
    ("labels on unconditional", "Sample", pb.SampleRequest(n=1, class_labels=[0]), PRECONDITION,
     "not conditional"),
    ("encode without encoder", "Encode",
     pb.EncodeRequest(model=pb.ModelRef(name="tiny-noenc"),
                      images=to_tensor(np.zeros((1, 1, 8, 8), np.float32))),
     PRECONDITION, "no encoder"),
]


@pytest.mark.parametrize(("rpc", "request_", "code", "text"),
                         [c[1:] for c in OTHER], ids=[c[0] for c in OTHER])
def test_other_errors_have_specific_status(stub: pb_grpc.GeneratorServiceStub, rpc: str,
                                           request_: Any, code: grpc.StatusCode,
                                           text: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(request_, timeout=30)
    assert info.value.code() == code, info.value.details()
    assert text in info.value.details()


def test_conditional_labels_are_checked(stub: pb_grpc.GeneratorServiceStub) -> None:
    cond = pb.ModelRef(name="tiny-cond")
    for labels, message in [([], "required"), ([99], "must be in"), ([0, 1], "one per item")]:
        with pytest.raises(grpc.RpcError) as info:
            stub.Sample(pb.SampleRequest(model=cond, n=3, class_labels=labels), timeout=30)
        assert info.value.code() == INVALID
        assert message in info.value.details()
        assert [f for f, _ in field_violations(info.value)] == ["class_labels"]


def test_degenerate_conditional_edit(stub: pb_grpc.GeneratorServiceStub) -> None:
    info = stub.GetModel(pb.GetModelRequest(), timeout=30)
    assert [d.name for d in info.directions][:1] == ["d0"]
    # Editing along a vector that *is* a held direction leaves nothing to move along.
    held = "pc0"
    vector = _direction_vector(stub, held)
    with pytest.raises(grpc.RpcError) as err:
        stub.Edit(pb.EditRequest(base=seeds(1), strengths=[1], direction_vector=to_tensor(vector),
                                 conditional_on=[held]), timeout=30)
    assert err.value.code() == INVALID
    assert [f for f, _ in field_violations(err.value)] == ["conditional_on"]


def _direction_vector(stub: pb_grpc.GeneratorServiceStub, name: str) -> np.ndarray:
    """Recover a named unit direction from the service: Edit a zero base by strength 1."""
    zero = pb.LatentSource(latents=to_tensor(np.zeros((1, 4), np.float32)))
    out = stub.Edit(pb.EditRequest(base=zero, direction_name=name, strengths=[1.0],
                                   output=pb.OUTPUT_FORMAT_LATENTS_ONLY), timeout=30)
    moved = np.frombuffer(out.latents.data, np.float32)
    return moved / np.linalg.norm(moved)


def test_request_over_message_limit(stub: pb_grpc.GeneratorServiceStub) -> None:
    huge = raw_tensor([1, 4], bytes(70 * 1024 * 1024))
    with pytest.raises(grpc.RpcError) as info:
        stub.Decode(pb.DecodeRequest(latents=huge), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_deadline_shorter_than_the_work(stub: pb_grpc.GeneratorServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Sample(pb.SampleRequest(n=1024, output=pb.OUTPUT_FORMAT_PNG), timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_server_keeps_serving_after_bad_input(stub: pb_grpc.GeneratorServiceStub) -> None:
    out = stub.Sample(pb.SampleRequest(n=2, seed=3), timeout=30)
    assert list(out.images.shape) == [2, 1, 8, 8]
