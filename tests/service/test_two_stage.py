"""Two-stage generators (mapping z → w, editing space W): the bundle format, w̄, the refusals
of bad bundles, the Triton export of the mapping, and every RPC on both backends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentserve.client import Client, InvalidArgumentError
from latentserve.core import latent_ops, seeding
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE, BundleError, BundleSpec
from latentserve.registry.bundle.truncation import MIN_SAMPLES, mean_w
from latentserve.registry.triton.export import component_io, components, export_triton
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.registry import TINY_W_DIM, edit_spec
from tests.fixtures.service import field_violations
from tests.fixtures.tiny import TinyMapping, TinyWeights, build_tiny_bundle

LATENT_DIM = 4
"""The tiny generators' z size (the default of build_tiny_bundle)."""


@pytest.fixture
def two_stage(tmp_path: Path) -> Bundle:
    return build_tiny_bundle(tmp_path / "tiny-w", name="tiny-w", w_dim=TINY_W_DIM)


# ------------------------------------------------------------------ bundle and w̄


def test_two_stage_bundle_layout(two_stage: Bundle) -> None:
    spec = two_stage.spec
    assert spec.editing_space == "w" and spec.mapping is not None
    assert (spec.latent_dim, spec.mapping.w_dim, spec.editing_dim) == (LATENT_DIM, 6, 6)
    assert two_stage.mapping_path is not None and two_stage.mapping_path.is_file()
    assert all(d.vector.shape == (TINY_W_DIM,) for d in two_stage.directions.values())
    # w̄ is the stored center, far from 0 (the mapping has a non-zero mean)
    center = two_stage.truncation_center
    assert center.shape == (TINY_W_DIM,) and float(np.abs(center).max()) > 0.2
    np.testing.assert_array_equal(center, mean_w(two_stage.mapping_path, spec, seed=0))
    reloaded = load_bundle(two_stage.root)
    assert reloaded.spec == spec and reloaded.content_hash == two_stage.content_hash


def test_mean_w_matches_numpy_and_refuses_few_samples(two_stage: Bundle) -> None:
    spec = two_stage.spec
    assert two_stage.mapping_path is not None
    z = np.random.default_rng(3).standard_normal((MIN_SAMPLES, LATENT_DIM)).astype(np.float32)
    reference = TinyMapping(LATENT_DIM, TINY_W_DIM, seed=0).map(z).astype(np.float64).mean(0)
    got = mean_w(two_stage.mapping_path, spec, seed=3)
    assert float(np.abs(got - reference).max()) < 1e-5
    assert not np.array_equal(got, mean_w(two_stage.mapping_path, spec, seed=4))
    with pytest.raises(ValueError, match="samples must be ≥ 10000"):
        mean_w(two_stage.mapping_path, spec, samples=MIN_SAMPLES - 1)
    one_stage = spec.model_copy(update={"mapping": None})
    with pytest.raises(BundleError, match="mapping"):
        mean_w(two_stage.mapping_path, one_stage)


def test_one_stage_spec_files_keep_their_fields(tiny_bundle: Bundle) -> None:
    raw = json.loads((tiny_bundle.root / SPEC_FILE).read_text())
    assert "mapping" not in raw and "editing_space" not in raw
    assert tiny_bundle.spec.editing_space == "z" and tiny_bundle.spec.editing_dim == LATENT_DIM


def _drop_mapping_file(root: Path) -> None:
    (root / "mapping.onnx").unlink()


def _rewire_decoder_to_z(root: Path) -> None:
    """A decoder of the z size in a W bundle (the w_dim/decoder mismatch)."""
    import onnx

    one_stage = build_tiny_bundle(root.parent / "z-only", name="tiny-w")
    model = onnx.load(str(one_stage.decoder_path))
    model.graph.input[0].name = "w"
    for node in model.graph.node:
        node.input[:] = ["w" if name == "z" else name for name in node.input]
    onnx.save(model, str(root / "decoder.onnx"))


BAD_BUNDLES: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing mapping file": (_drop_mapping_file, "mapping.onnx: file named by mapping.file"),
    "w_dim differs from the decoder input": (
        lambda root: edit_spec(root, lambda raw: raw["mapping"].update(w_dim=4) or
                                raw.update(truncation_center=[0.0] * 4)),
        "the spec says 4 (mapping.w_dim)"),
    "decoder takes z in a W bundle": (_rewire_decoder_to_z,
                                      "dimension 1 is 4, the spec says 6 (mapping.w_dim)"),
    "editing_space z with a mapping": (
        lambda root: edit_spec(root, lambda raw: raw.update(editing_space="z")),
        "editing_space must be 'w' when mapping is set"),
    "editing_space w without a mapping": (
        lambda root: edit_spec(root, lambda raw: raw.pop("mapping")),
        "editing_space 'w' needs a mapping"),
    "truncation_center missing": (
        lambda root: edit_spec(root, lambda raw: raw.pop("truncation_center")),
        "truncation_center is required when editing_space is 'w'"),
    "truncation_center of the z size": (
        lambda root: edit_spec(root, lambda raw: raw.update(truncation_center=[0.0] * 4)),
        "truncation_center has 4 values, mapping.w_dim is 6"),
    "mapping output of another size": (
        lambda root: edit_spec(root, lambda raw: raw["mapping"].update(output="h")),
        "graph has no output 'h' named by mapping"),
    "mapping input name": (
        lambda root: edit_spec(root, lambda raw: raw["mapping"].update(input="noise")),
        "but mapping expects ['noise']"),
}


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_bad_two_stage_bundles_name_the_field(case: str, two_stage: Bundle) -> None:
    damage, message = BAD_BUNDLES[case]
    damage(two_stage.root)
    with pytest.raises(BundleError) as caught:
        load_bundle(two_stage.root)
    assert message in str(caught.value)


def test_spec_refuses_a_conditional_mapping() -> None:
    """Labels go to the decoder: a mapping that takes them is not part of the schema."""
    with pytest.raises(BundleError, match=r"mapping\.condition_input"):
        BundleSpec.parse({
            "schema_version": 1, "name": "x", "latent_dim": 4,
            "output": {"shape": [1, 8, 8], "range": [0, 1]},
            "mapping": {"w_dim": 6, "condition_input": "label"}, "editing_space": "w",
            "truncation_center": [0.0] * 6,
        })


def test_triton_export_has_a_mapping_model(two_stage: Bundle, tmp_path: Path) -> None:
    assert components(two_stage) == ["decoder", "mapping", "encoder"]
    inputs, outputs = component_io(two_stage.spec, "mapping")
    assert [(t.name, t.dims) for t in inputs] == [("z", (LATENT_DIM,))]
    assert [(t.name, t.dims) for t in outputs] == [("w", (TINY_W_DIM,))]
    dec_in, _ = component_io(two_stage.spec, "decoder")
    assert dec_in[0].dims == (TINY_W_DIM,)
    _, enc_out = component_io(two_stage.spec, "encoder")
    assert {t.dims for t in enc_out} == {(TINY_W_DIM,)}
    names = export_triton(two_stage, 2, tmp_path / "repo", flavor="python")
    assert names == ["tiny-w__v2", "tiny-w__v2__mapping", "tiny-w__v2__encoder"]
    mapping_onnx = tmp_path / "repo" / "tiny-w__v2__mapping" / "1" / "model.onnx"
    assert two_stage.mapping_path is not None
    assert mapping_onnx.read_bytes() == two_stage.mapping_path.read_bytes()


# ------------------------------------------------------------------ RPCs (both backends)


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Iterator[Client]:
    with Client(server.address, timeout_s=30) as c:
        yield c


@pytest.fixture(scope="module")
def tiny_w(registry_bundles: dict[str, Bundle]) -> Bundle:
    return registry_bundles["tiny-w"]


def _mapped(bundle: Bundle, z: np.ndarray) -> np.ndarray:
    """The NumPy reference of the tiny mapping (float32, like onnxruntime up to rounding)."""
    assert bundle.spec.mapping is not None
    return TinyMapping(bundle.spec.latent_dim, bundle.spec.mapping.w_dim, seed=0).map(z)


def test_sample_truncates_w_around_w_mean(client: Client, tiny_w: Bundle) -> None:
    psi = 0.5
    out = client.sample("tiny-w", n=5, seed=11, truncation_psi=psi)
    z = seeding.sample_latents(11, 5, LATENT_DIM)
    w = _mapped(tiny_w, z)
    center = tiny_w.truncation_center
    expected = center + psi * (w - center)
    assert out.latents.shape == (5, TINY_W_DIM) and out.latent_space == "w"
    assert float(np.abs(out.latents - expected).max()) < 1e-5
    # truncation around w̄, not around 0: at ψ → 0 every item sits on w̄
    near = client.sample("tiny-w", n=3, seed=11, truncation_psi=1e-6, output="latents")
    assert float(np.abs(near.latents - center).max()) < 1e-5
    plain = client.sample("tiny-w", n=5, seed=11)
    assert float(np.abs(plain.latents - w).max()) < 1e-5
    weights = TinyWeights(TINY_W_DIM, (1, 8, 8), 0, seed=0)
    assert out.images is not None
    assert float(np.abs(out.images - weights.decode(out.latents)).max()) < 1e-5
    one_stage = client.sample("tiny", n=2, seed=11)
    assert one_stage.latent_space == "z" and one_stage.latents.shape == (2, LATENT_DIM)


def test_interpolate_in_w_between_mapped_keyframes(client: Client) -> None:
    keys = np.concatenate([client.sample("tiny-w", n=1, seed=s, truncation_psi=0.7,
                                         output="latents").latents for s in (1, 2, 3)])
    path = client.interpolate("tiny-w", seeds=[1, 2, 3], steps=5, method="lerp",
                              truncation_psi=0.7, output="latents")
    assert path.latents.shape == (9, TINY_W_DIM) and path.latent_space == "w"
    np.testing.assert_allclose(path.latents, latent_ops.interpolate_path(keys, 5, "lerp"),
                               atol=1e-6)
    default = client.interpolate("tiny-w", seeds=[1, 2, 3], steps=5, truncation_psi=0.7,
                                 output="latents")  # unspecified method: lerp in W
    np.testing.assert_array_equal(default.latents, path.latents)
    given = client.interpolate("tiny-w", latents=keys, steps=5, method="slerp")
    np.testing.assert_allclose(given.latents, latent_ops.interpolate_path(keys, 5, "slerp"),
                               atol=1e-6)


def test_edit_moves_w_along_w_directions(client: Client, tiny_w: Bundle) -> None:
    d0 = tiny_w.directions["d0"]
    base = client.sample("tiny-w", n=2, seed=4, output="latents").latents
    sweep = client.edit("tiny-w", seeds=[4], direction="d0", strengths=[-1, 0, 2],
                        output="latents")
    expected = latent_ops.edit_latents(base[:1], d0.vector, np.array([-1, 0, 2], np.float32),
                                       d0.sigma)
    np.testing.assert_allclose(sweep.latents, expected, atol=1e-6)
    given = client.edit("tiny-w", latents=base, direction="pc0", strengths=[1.5],
                        output="latents")
    pc0 = tiny_w.directions["pc0"]
    np.testing.assert_allclose(given.latents, base + 1.5 * pc0.sigma * pc0.vector, atol=1e-6)
    vector = np.arange(TINY_W_DIM, dtype=np.float32) + 1
    moved = client.edit("tiny-w", latents=base[:1], direction=vector, strengths=[1.0],
                        output="latents")
    np.testing.assert_allclose(moved.latents[0] - base[0], vector / np.linalg.norm(vector),
                               atol=1e-6)


def test_decode_and_encode_use_w(client: Client) -> None:
    w = client.sample("tiny-w", n=3, seed=5, truncation_psi=0.8).latents
    decoded = client.decode("tiny-w", w)
    assert decoded.latent_space == "w"
    again = client.encode("tiny-w", decoded.images)
    assert again.latents.shape == (3, TINY_W_DIM) and again.latent_space == "w"
    assert float(np.abs(again.latents - w).max()) < 1e-3
    with pytest.raises(InvalidArgumentError) as caught:
        client.decode("tiny-w", np.zeros((1, LATENT_DIM), np.float32))
    assert [v.field for v in caught.value.field_violations] == ["latents.shape"]
    assert "W, mapping.w_dim 6" in str(caught.value)
    with pytest.raises(InvalidArgumentError) as vector_error:
        client.edit("tiny-w", seeds=[1], direction=np.ones(LATENT_DIM, np.float32),
                    strengths=[1.0])
    assert [v.field for v in vector_error.value.field_violations] == ["direction_vector.shape"]


def test_get_model_reports_spaces_and_encoder_conditioning(client: Client) -> None:
    two = client.get_model("tiny-w")
    assert (two.editing_space, two.has_mapping, two.w_dim, two.editing_dim) == ("w", True, 6, 6)
    assert two.latent_dim == LATENT_DIM and not two.encoder_conditional
    one = client.get_model("tiny")
    assert (one.editing_space, one.has_mapping, one.w_dim, one.editing_dim) == ("z", False, 0, 4)
    assert client.get_model("tiny-cond").encoder_conditional
    assert not client.get_model("tiny-noenc").encoder_conditional


def test_encode_on_a_conditional_encoder_requires_labels(server: BackgroundServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GeneratorServiceStub(channel)
        images = np.full((1, 1, 8, 8), 0.5, np.float32)
        from latentserve.core.tensors import to_tensor

        request = pb.EncodeRequest(model=pb.ModelRef(name="tiny-cond"), images=to_tensor(images))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Encode(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "class_labels is required" in (caught.value.details() or "")
    assert [f for f, _ in field_violations(caught.value)] == ["class_labels"]
