"""requests: protobuf requests → checked values, each refusal naming its field, limits first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.core.tensors import to_tensor
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service import requests as rq
from latentserve.v1 import generator_pb2 as pb


@pytest.fixture(scope="module")
def specs(registry_bundles: dict[str, Bundle]) -> dict[str, BundleSpec]:
    """Specs of the session's tiny bundles: z of 4 ("tiny"), 3 classes ("tiny-cond"), W of 6."""
    return {name: bundle.spec for name, bundle in registry_bundles.items()}


def refused_field(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.violations[0].field


# ------------------------------------------------------------------ before resolution
def test_repeated_fields_are_bounded_before_any_work() -> None:
    request = pb.SampleRequest(n=1, class_labels=[0] * 11)
    with pytest.raises(InvalidArgument) as exc:
        rq.check_sizes(request, 10)
    assert refused_field(exc) == "class_labels" and "11 entries" in str(exc.value)
    path = pb.InterpolateRequest(keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1] * 6)))
    with pytest.raises(InvalidArgument) as exc:
        rq.check_sizes(path, 5)
    assert refused_field(exc) == "keyframes.seeds.seeds"
    rq.check_sizes(pb.SampleRequest(class_labels=[0] * 10), 10)


def test_a_tensor_of_too_many_dimensions_is_refused_by_its_shape() -> None:
    request = pb.DecodeRequest(latents=pb.Tensor(shape=[1] * (rq.MAX_TENSOR_RANK + 1)))
    with pytest.raises(InvalidArgument) as exc:
        rq.check_sizes(request, 100)
    assert refused_field(exc) == "latents.shape"


def test_model_refs_become_lease_arguments() -> None:
    assert rq.model_ref(pb.ModelRef()) == {"name": ""}
    assert rq.model_ref(pb.ModelRef(name="m", version=3)) == {"name": "m", "version": 3}
    assert rq.model_ref(pb.ModelRef(name="m", alias="staging")) == {"name": "m",
                                                                     "alias": "staging"}
    with pytest.raises(InvalidArgument) as exc:
        rq.model_ref(pb.ModelRef(name="m", version=-1))
    assert refused_field(exc) == "model.version"
    with pytest.raises(InvalidArgument) as exc:
        rq.model_ref(pb.ModelRef(name="m", alias=""))
    assert refused_field(exc) == "model.alias"


@pytest.mark.parametrize("value", [0, 11, -3])
def test_counts_outside_their_range_are_refused(value: int) -> None:
    with pytest.raises(InvalidArgument, match="between 1 and 10") as exc:
        rq.check_count(value, "n", 10)
    assert refused_field(exc) == "n"


@pytest.mark.parametrize("psi", [0.0, -0.5, math.inf, math.nan])
def test_psi_must_be_finite_and_positive(psi: float) -> None:
    with pytest.raises(InvalidArgument) as exc:
        rq.truncation_psi(pb.SampleRequest(truncation_psi=psi), "truncation_psi")
    assert refused_field(exc) == "truncation_psi"


def test_psi_unset_means_no_truncation() -> None:
    assert rq.truncation_psi(pb.SampleRequest(), "truncation_psi") is None
    assert rq.truncation_psi(pb.SampleRequest(truncation_psi=0.7), "x") == pytest.approx(0.7)


def test_enums_are_named_or_refused(specs: dict[str, BundleSpec]) -> None:
    assert rq.output_format(pb.OUTPUT_FORMAT_UNSPECIFIED) == "float32"
    assert rq.output_format(pb.OUTPUT_FORMAT_LATENTS_ONLY) == "latents"
    with pytest.raises(InvalidArgument) as exc:
        rq.output_format(99)
    assert refused_field(exc) == "output"
    assert rq.method(pb.INTERPOLATION_METHOD_UNSPECIFIED, specs["tiny"]) == "slerp"
    assert rq.method(pb.INTERPOLATION_METHOD_UNSPECIFIED, specs["tiny-w"]) == "lerp"
    assert rq.method(pb.INTERPOLATION_METHOD_VP_LERP, specs["tiny"]) == "vp_lerp"
    with pytest.raises(InvalidArgument) as exc:
        rq.method(42, specs["tiny"])
    assert refused_field(exc) == "method"


def test_strengths_need_one_finite_value() -> None:
    np.testing.assert_array_equal(rq.strengths([-1.0, 2.0]), np.array([-1, 2], np.float32))
    for bad in ([], [1.0, math.inf]):
        with pytest.raises(InvalidArgument) as exc:
            rq.strengths(bad)
        assert refused_field(exc) == "strengths"


# ------------------------------------------------------------------ against the spec
def test_latents_of_the_wrong_size_name_the_editing_space(specs: dict[str, BundleSpec]) -> None:
    z = np.zeros((2, 4), np.float32)
    np.testing.assert_array_equal(rq.latents(to_tensor(z), "latents", specs["tiny"], 8), z)
    with pytest.raises(InvalidArgument, match=r"in W, mapping\.w_dim 6") as exc:
        rq.latents(to_tensor(z), "latents", specs["tiny-w"], 8)
    assert refused_field(exc) == "latents.shape"
    with pytest.raises(InvalidArgument) as exc:
        rq.latents(to_tensor(np.zeros((9, 4), np.float32)), "latents", specs["tiny"], 8)
    assert refused_field(exc) == "latents.shape[0]"
    with pytest.raises(InvalidArgument):
        rq.latents(to_tensor(np.full((1, 4), np.nan, np.float32)), "latents", specs["tiny"], 8)


def test_keyframes_are_latents_or_seeds(specs: dict[str, BundleSpec]) -> None:
    spec = specs["tiny"]
    seeds = pb.LatentSource(seeds=pb.SeedList(seeds=[3, 4], truncation_psi=0.5))
    source = rq.keyframes(seeds, "keyframes", spec, 8, min_count=2)
    assert source == rq.KeyframeSeeds([3, 4], 0.5) and rq.keyframe_count(source) == 2
    assert rq.source_field(seeds, "keyframes") == "keyframes.seeds.truncation_psi"
    with pytest.raises(InvalidArgument) as exc:
        rq.keyframes(pb.LatentSource(seeds=pb.SeedList(seeds=[3])), "keyframes", spec, 8,
                     min_count=2)
    assert refused_field(exc) == "keyframes.seeds.seeds"
    with pytest.raises(InvalidArgument) as exc:
        rq.keyframes(pb.LatentSource(), "base", spec, 8)
    assert refused_field(exc) == "base"


def test_class_labels_follow_the_model(specs: dict[str, BundleSpec]) -> None:
    cond = specs["tiny-cond"]
    with pytest.raises(FailedPrecondition):
        rq.class_labels([1], specs["tiny"], rows=1, field="class_labels")
    assert rq.class_labels([], specs["tiny"], rows=3, field="class_labels") is None
    with pytest.raises(InvalidArgument, match="required") as exc:
        rq.class_labels([], cond, rows=2, field="class_labels")
    assert refused_field(exc) == "class_labels"
    with pytest.raises(InvalidArgument, match=r"\[0, 2\]"):
        rq.class_labels([3], cond, rows=1, field="class_labels")
    with pytest.raises(InvalidArgument, match="one per item"):
        rq.class_labels([0, 1], cond, rows=3, field="class_labels")
    labels = rq.class_labels([2], cond, rows=3, field="class_labels")
    np.testing.assert_array_equal(labels, [2, 2, 2])
    per_base = rq.class_labels([0, 1], cond, rows=6, field="class_labels", per="base", groups=2)
    np.testing.assert_array_equal(per_base, [0, 0, 0, 1, 1, 1])


def test_a_path_over_the_frame_limit_is_refused_by_steps(specs: dict[str, BundleSpec]) -> None:
    request = pb.InterpolateRequest(
        keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2, 3])), steps=6)
    path = rq.path(request, specs["tiny"], 11)
    assert (path.frames, path.steps, path.method, path.output) == (11, 6, "slerp", "float32")
    with pytest.raises(InvalidArgument, match="13 frames") as exc:
        rq.path(pb.InterpolateRequest(keyframes=request.keyframes, steps=7), specs["tiny"], 11)
    assert refused_field(exc) == "steps"


def test_edit_directions_by_name_or_vector(specs: dict[str, BundleSpec]) -> None:
    spec = specs["tiny"]
    named = rq.edit_direction(pb.EditRequest(direction_name="d0", conditional_on=["pc0"]), spec)
    assert (named.name, named.vector, named.conditional_on) == ("d0", None, ["pc0"])
    vector = rq.edit_direction(
        pb.EditRequest(direction_vector=to_tensor(np.array([0, 2, 0, 0], np.float32))), spec)
    assert vector.vector is not None and vector.name == ""
    with pytest.raises(InvalidArgument) as exc:
        rq.edit_direction(pb.EditRequest(direction_vector=to_tensor(np.zeros(4, np.float32))),
                          spec)
    assert refused_field(exc) == "direction_vector"
    with pytest.raises(InvalidArgument) as exc:
        rq.edit_direction(pb.EditRequest(), spec)
    assert refused_field(exc) == "direction"


async def test_png_count_is_checked_before_any_decoding(specs: dict[str, BundleSpec]) -> None:
    not_png = pb.EncodeRequest(png=pb.PngList(images=[b"not a png"] * 3))
    with pytest.raises(InvalidArgument) as exc:
        await rq.encode_images(not_png, specs["tiny"], 2)
    assert refused_field(exc) == "png.images" and "between 1 and 2" in str(exc.value)
    with pytest.raises(InvalidArgument) as exc:
        await rq.encode_images(not_png, specs["tiny"], 3)
    assert refused_field(exc) == "png.images[0]"  # within the limit: decoded, and refused
    with pytest.raises(InvalidArgument) as exc:
        await rq.encode_images(pb.EncodeRequest(), specs["tiny"], 3)
    assert refused_field(exc) == "input"


def test_response_size_is_estimated_against_the_message_limit(
        specs: dict[str, BundleSpec]) -> None:
    spec = specs["tiny"]  # 1×8×8 images, 4-d latents: 64·4 + 16 bytes per float32 item
    rq.check_response_size(1024, spec, "float32", 1024 * 272)
    with pytest.raises(InvalidArgument) as exc:
        rq.check_response_size(1025, spec, "float32", 1024 * 272)
    assert refused_field(exc) == "output"
    rq.check_response_size(1025, spec, "png", 1024 * 272)  # one byte per pixel estimated
