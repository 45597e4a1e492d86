"""Generators from other codebases taken as their authors export them: the DCGAN tutorial's
rank-4 z, an encoder whose width the exporter left symbolic, a decoder with an unbounded
output, and direction discovery through the graphs exporters write (Shape/Reshape, Expand,
SiLU as Sigmoid·Mul, GELU through Erf, GroupNorm, LeakyReLU), with every refusal readable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from latentserve.core.seeding import sample_latents
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.onnx_graph import early_activation, first_latent_layer
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.quality import discovery
from latentserve.registry.quality.direction_fits import top_components
from tests.fixtures import foreign_generators as fg
from tests.fixtures.cli import run_cli


@pytest.fixture(scope="module")
def dcgan_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fg.export_dcgan(tmp_path_factory.mktemp("dcgan") / "dcgan.onnx", ngf=8)


@pytest.fixture
def dcgan_bundle(tmp_path: Path, dcgan_onnx: Path) -> Bundle:
    return build_bundle(tmp_path / "dcgan", BundleOptions("dcgan", (-1.0, 1.0)),
                        {"decoder": dcgan_onnx})


def test_a_rank_4_dcgan_latent_is_flattened_by_the_builder(dcgan_onnx: Path,
                                                           dcgan_bundle: Bundle) -> None:
    spec = dcgan_bundle.spec
    assert spec.latent_dim == 100 and spec.output.shape == [3, 64, 64]
    served = ort.InferenceSession(str(dcgan_bundle.decoder_path))
    assert served.get_inputs()[0].shape == ["batch", 100]
    assert "flattened" in spec.provenance["adapted_by_builder"]["decoder"]
    z = sample_latents(3, 5, 100)
    original = ort.InferenceSession(str(dcgan_onnx)).run(None, {"z": z.reshape(5, 100, 1, 1)})
    np.testing.assert_array_equal(served.run(None, {"z": z})[0], original[0])


def test_cli_errors_keep_their_brackets(tmp_path: Path, dcgan_onnx: Path) -> None:
    code, out = run_cli("bundle", "create", "--decoder", str(dcgan_onnx), "--output-range",
                        "-1,1", "--output-shape", "1,64,64", "--out", str(tmp_path / "b"))
    assert code == 2
    assert "error: output_shape: [1, 64, 64] was stated" in out
    assert "[batch, 3, 64, 64]" in out


def test_an_unbounded_decoder_is_told_to_clamp_or_tanh(tmp_path: Path) -> None:
    path = fg.export_vae_decoder(tmp_path / "vae.onnx", clamped=False, flat=True)
    with pytest.raises(BundleError, match=r"ends in Conv.*clamp or a tanh.*x\.clamp\(-1, 1\)"):
        build_bundle(tmp_path / "b", BundleOptions("vae", (-1.0, 1.0)), {"decoder": path})


def test_a_symbolic_encoder_width_is_pinned_not_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from latentserve.generators.torch_bundle import build_bundle_from_torch

    encoder = fg.ViewEncoder().eval()
    built = build_bundle_from_torch(tmp_path / "b", BundleOptions("dcgan-enc", (-1.0, 1.0)),
                                    {"decoder": fg.FlatDcgan(fg.dcgan(8)), "encoder": encoder},
                                    example_latent=torch.zeros(1, 100))
    spec = built.bundle.spec
    assert spec.encoder is not None
    assert "pinned to 100" in spec.provenance["adapted_by_builder"]["encoder"]
    model = onnx.load(str(built.bundle.encoder_path))
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 100


def test_sefa_and_pca_read_the_dcgan(dcgan_bundle: Bundle) -> None:
    model = onnx.load(str(dcgan_bundle.decoder_path))
    layer = first_latent_layer(model, "z", 100)
    assert layer.op == "ConvTranspose" and layer.matrix.shape == (64 * 16, 100)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    assert early_activation(model, layer) == relu.output[0]
    sefa = discovery.sefa(dcgan_bundle, 3)
    pca = discovery.pca(dcgan_bundle, 3, samples=512)
    assert [d.name for d in sefa + pca] == ["sefa0", "sefa1", "sefa2", "pc0", "pc1", "pc2"]


def test_pca_honours_weight(dcgan_bundle: Bundle) -> None:
    model = onnx.load(str(dcgan_bundle.decoder_path))
    second = [n for n in model.graph.node if n.op_type == "ConvTranspose"][1]
    with pytest.raises(BundleError, match="does not act on 100 latent values"):
        discovery.pca(dcgan_bundle, 2, samples=256, weight=second.input[1])
    first = next(n for n in model.graph.node if n.op_type == "ConvTranspose")
    by_weight = discovery.pca(dcgan_bundle, 2, samples=256, weight=first.input[1])
    default = discovery.pca(dcgan_bundle, 2, samples=256)
    np.testing.assert_array_equal(by_weight[0].vector, default[0].vector)


def test_options_that_do_not_apply_are_refused(dcgan_bundle: Bundle) -> None:
    root = str(dcgan_bundle.root)
    code, out = run_cli("directions", "discover", root, "--method", "sefa", "--layer", "x")
    assert code == 2 and "--layer does not apply to --method sefa" in out
    code, out = run_cli("directions", "discover", root, "--method", "supervised", "--weight",
                        "w", "--labels", "l.npz")
    assert code == 2 and "--weight does not apply to --method supervised" in out


def test_a_vae_decoder_gets_pca_through_silu_and_sefa_refuses_its_spatial_latent(
        tmp_path: Path) -> None:
    path = fg.export_vae_decoder(tmp_path / "vae.onnx", flat=True)
    bundle = build_bundle(tmp_path / "b", BundleOptions("vae", (-1.0, 1.0)), {"decoder": path})
    model = onnx.load(str(bundle.decoder_path))
    layer = first_latent_layer(model, "latent", 256)
    assert layer.spatial == (4, 8, 8)
    silu = next(n for n in model.graph.node if n.op_type == "Sigmoid")
    mul = next(n for n in model.graph.node if n.op_type == "Mul" and silu.output[0] in n.input)
    assert early_activation(model, layer) == mul.output[0]
    assert len(discovery.pca(bundle, 2, samples=256)) == 2
    with pytest.raises(BundleError, match=r"spatial map \[4, 8, 8\].*--method pca.*supervised"):
        discovery.sefa(bundle, 2)


def test_gelu_is_an_activation(tmp_path: Path) -> None:
    path = fg.export_gelu_decoder(tmp_path / "gelu.onnx")
    model = onnx.load(str(path))
    layer = first_latent_layer(model, "z", 8)
    mul = [n for n in model.graph.node if n.op_type == "Mul"]
    assert any(n.op_type == "Erf" for n in model.graph.node)
    assert early_activation(model, layer) == mul[-1].output[0]


def test_sefa_of_a_two_stage_gan_reads_every_style_affine_through_expand(
        tmp_path: Path) -> None:
    mapping, synthesis = fg.export_style_gan(tmp_path, per_layer=False)
    bundle = build_bundle(tmp_path / "b", BundleOptions("sg", (-1.0, 1.0)),
                          {"mapping": mapping, "decoder": synthesis})
    found = discovery.sefa(bundle, 3, samples=256)
    assert "7 weights reading w" in found[0].unit
    assert [d.name for d in discovery.pca(bundle, 2, samples=256)] == ["pc0", "pc1"]


def test_randomised_components_match_the_exact_svd() -> None:
    rng = np.random.default_rng(0)
    low = rng.standard_normal((1200, 40)) @ rng.standard_normal((40, 900))
    noisy = low + 0.1 * rng.standard_normal(low.shape)
    centred = noisy - noisy.mean(axis=0)
    values, vectors = top_components(centred, 5, rank_hint=40)
    _, exact, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(values, exact[:5], rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(vectors * vt[:5], axis=1)), 1.0, atol=1e-6)


def test_loaded_bundle_round_trips(dcgan_bundle: Bundle) -> None:
    assert load_bundle(dcgan_bundle.root).spec == dcgan_bundle.spec


def test_style_layers_of_a_w_plus_synthesis_read_each_ws_layer(tmp_path: Path) -> None:
    from latentserve.registry.bundle.onnx_graph import style_layers

    _, synthesis = fg.export_style_gan(tmp_path, per_layer=True)
    found = style_layers(onnx.load(str(synthesis)), "ws", 32)
    assert [f.ws_index for f in found] == list(range(7))     # the toRGB affine reads ws[:, -1]
    assert all(f.op == "Gemm" and f.matrix.shape[1] == 32 for f in found)
