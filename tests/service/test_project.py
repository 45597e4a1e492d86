"""Project over real gRPC on both backends: streamed progress, the result, errors, fair share."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from latentserve.core.tensors import from_tensor, to_tensor
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import field_violations, metric_value


def _targets(stub: pb_grpc.GeneratorServiceStub, model: str, seed: int, n: int = 1,
             labels: list[int] | None = None) -> np.ndarray:
    out = stub.Sample(pb.SampleRequest(model=pb.ModelRef(name=model), n=n, seed=seed,
                                       class_labels=labels or []))
    return from_tensor(out.images)


def _project(stub: pb_grpc.GeneratorServiceStub, model: str, images: np.ndarray,
             **fields: object) -> list[pb.ProjectResponse]:
    request = pb.ProjectRequest(model=pb.ModelRef(name=model), images=to_tensor(images),
                                **fields)  # type: ignore[arg-type]
    return list(stub.Project(request, timeout=120))


@pytest.mark.parametrize("model", ["tiny", "tiny-noenc", "tiny-w"])
def test_project_streams_progress_then_reconstructs_generated_images(
        stub: pb_grpc.GeneratorServiceStub, model: str) -> None:
    images = _targets(stub, model, seed=11, n=2)
    messages = _project(stub, model, images, steps=12, seed=3)
    *progress, final = messages
    assert [m.step for m in progress] == list(range(12))
    assert not any(m.done for m in progress) and final.done
    assert final.stop == pb.PROJECT_STOP_STEPS and final.step == 12
    losses = np.array([list(m.loss) for m in messages])
    assert (np.diff(losses, axis=0) <= 1e-12).all()  # the best so far never gets worse
    assert (losses[-1] <= np.array(final.initial_loss)).all()
    z = from_tensor(final.latents)
    assert z.shape[0] == 2 and final.latent_space in (pb.LATENT_SPACE_Z, pb.LATENT_SPACE_W)
    reconstructed = from_tensor(final.images)
    assert reconstructed.shape == images.shape
    assert min(final.psnr) > 20.0 and min(final.ssim) > 0.8
    decoded = from_tensor(stub.Decode(pb.DecodeRequest(model=pb.ModelRef(name=model),
                                                       latents=final.latents)).images)
    np.testing.assert_allclose(decoded, reconstructed, atol=1e-5)
    assert final.decodes > 12 * 2 and final.model.name == model


def test_project_is_deterministic_for_a_seed(stub: pb_grpc.GeneratorServiceStub) -> None:
    images = _targets(stub, "tiny-noenc", seed=5)
    a = _project(stub, "tiny-noenc", images, steps=5, seed=9)[-1]
    b = _project(stub, "tiny-noenc", images, steps=5, seed=9)[-1]
    np.testing.assert_array_equal(from_tensor(a.latents), from_tensor(b.latents))


def test_conditional_projection_picks_or_keeps_the_label(
        stub: pb_grpc.GeneratorServiceStub) -> None:
    images = _targets(stub, "tiny-cond", seed=4, n=2, labels=[2, 1])
    chosen = _project(stub, "tiny-cond", images, steps=4)[-1]
    assert list(chosen.class_labels) == [2, 1]
    kept = _project(stub, "tiny-cond", images, steps=2, class_labels=[0])[-1]
    assert list(kept.class_labels) == [0, 0]


def test_progress_reconstructions_png_and_spacing(stub: pb_grpc.GeneratorServiceStub) -> None:
    images = _targets(stub, "tiny", seed=2)
    messages = _project(stub, "tiny", images, steps=6, progress_every=3,
                        include_reconstruction=True, output=pb.OUTPUT_FORMAT_PNG)
    assert [m.step for m in messages] == [0, 3, 6]
    for m in messages:
        assert len(m.png) == 1
        assert Image.open(io.BytesIO(m.png[0])).size == (8, 8)


def test_png_targets_and_timeout(stub: pb_grpc.GeneratorServiceStub) -> None:
    images = _targets(stub, "tiny", seed=8)
    buf = io.BytesIO()
    Image.fromarray((images[0, 0] * 255).round().astype(np.uint8)).save(buf, format="PNG")
    request = pb.ProjectRequest(model=pb.ModelRef(name="tiny"), steps=500, timeout_s=1e-6,
                                png=pb.PngList(images=[buf.getvalue()]))
    final = list(stub.Project(request, timeout=120))[-1]
    assert final.done and final.stop == pb.PROJECT_STOP_TIMEOUT and final.step == 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"steps": 100_000}, "steps"),
    ({"population": 1}, "population"),
    ({"timeout_s": -1.0}, "timeout_s"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"output": 99}, "output"),
])
def test_bad_budgets_are_invalid_argument_naming_the_field(
        stub: pb_grpc.GeneratorServiceStub, fields: dict[str, object], field: str) -> None:
    images = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(grpc.RpcError) as info:
        _project(stub, "tiny", images, **fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == [field]


def test_bad_images_are_invalid_argument_naming_the_field(
        stub: pb_grpc.GeneratorServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _project(stub, "tiny", np.zeros((1, 1, 16, 16), np.float32))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value)[0][0].startswith("images")
    request = pb.ProjectRequest(model=pb.ModelRef(name="tiny"),
                                png=pb.PngList(images=[b"not a png"]))
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Project(request, timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value)[0][0].startswith("png.images[0]")
    with pytest.raises(grpc.RpcError) as info:
        _project(stub, "tiny", np.zeros((17, 1, 8, 8), np.float32))
    assert [f for f, _ in field_violations(info.value)] == ["images.shape[0]"]


def test_encoder_start_needs_an_encoder(stub: pb_grpc.GeneratorServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _project(stub, "tiny-noenc", np.zeros((1, 1, 8, 8), np.float32),
                 init=pb.PROJECT_INIT_ENCODER)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as info:
        _project(stub, "tiny", np.zeros((1, 1, 8, 8), np.float32), class_labels=[1])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_samples_are_served_during_a_projection_and_cancel_frees_the_lane(
        server: BackgroundServer, stub: pb_grpc.GeneratorServiceStub) -> None:
    images = _targets(stub, "tiny-noenc", seed=1)
    request = pb.ProjectRequest(model=pb.ModelRef(name="tiny-noenc"), steps=2000,
                                images=to_tensor(images), population=64)
    stream = stub.Project(request, timeout=120)
    first = next(stream)
    assert first.step == 0
    for seed in range(5):  # interactive requests are answered while the search runs
        out = stub.Sample(pb.SampleRequest(model=pb.ModelRef(name="tiny-noenc"), n=2,
                                           seed=seed))
        assert out.images.shape == [2, 1, 8, 8]
    assert next(stream).step >= 1
    stream.cancel()
    with pytest.raises(grpc.RpcError) as info:
        list(stream)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    out = stub.Sample(pb.SampleRequest(model=pb.ModelRef(name="tiny-noenc"), n=1, seed=1))
    assert out.images.shape == [1, 1, 8, 8]
    assert metric_value(server, "latentserve_background_queue_items",
                        model="tiny-noenc", component="decoder") >= 0.0
