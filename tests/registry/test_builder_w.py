"""Two-stage generators through the public bundle path: `build_bundle` / `bundle create
--mapping`, the mapping resolver's refusals, the W-space OnnxGenerator and evaluation, and
direction discovery in W (SeFa on the style weight, GANSpace PCA of sampled w, supervised)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from latentserve.cli import app
from latentserve.core import seeding
from latentserve.registry.bundle.builder import BundleOptions, OnnxComponent, build_bundle
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE, BundleError
from latentserve.registry.bundle.truncation import mean_of_mapping, mean_w
from latentserve.registry.quality import discovery
from latentserve.registry.quality.evaluate import EvalSizes, evaluate_bundle
from latentserve.registry.quality.onnx_generator import OnnxGenerator
from tests.fixtures.tiny import TinyMapping, TinyWeights, build_tiny_bundle

runner = CliRunner()
LATENT_DIM, W_DIM = 4, 6
SMALL = EvalSizes(determinism_items=4, finite_samples=16, path_pairs=3, path_samples=40,
                  midpoint_pairs=50, edit_seeds=4)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A tiny two-stage bundle whose ONNX files play the user's mapping/synthesis files."""
    return build_tiny_bundle(tmp_path_factory.mktemp("src") / "tiny-w", name="tiny-w",
                             w_dim=W_DIM)


@pytest.fixture(scope="module")
def built(source: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    assert source.mapping_path is not None and source.encoder_path is not None
    return build_bundle(tmp_path_factory.mktemp("out") / "mine", BundleOptions(
        "mine", (0.0, 1.0)), {"mapping": source.mapping_path, "decoder": source.decoder_path,
                              "encoder": source.encoder_path})


def _mapping_onnx(path: Path, *, inputs: dict[str, int], outputs: dict[str, int | str],
                  latent_dim: int = LATENT_DIM) -> Path:
    """Mappings of odd shapes: each output is a MatMul of the first input (width from the
    graph, symbolic when a str)."""
    first = next(iter(inputs))
    nodes, inits = [], []
    for i, (name, width) in enumerate(outputs.items()):
        cols = width if isinstance(width, int) else W_DIM
        inits.append(numpy_helper.from_array(np.ones((inputs[first], cols), np.float32),
                                             f"m{i}"))
        nodes.append(helper.make_node("MatMul", [first, f"m{i}"], [name]))
    graph = helper.make_graph(
        nodes, "map",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", d])
         for n, d in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", d])
         for n, d in outputs.items()], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    onnx.save_model(model, str(path))
    return path


# ------------------------------------------------------------------ build_bundle


def test_built_two_stage_bundle_edits_in_w(built: Bundle, source: Bundle) -> None:
    spec = built.spec
    assert spec.mapping is not None and spec.editing_space == "w"
    assert (spec.latent_dim, spec.mapping.w_dim, spec.editing_dim) == (LATENT_DIM, W_DIM, W_DIM)
    assert (spec.mapping.input, spec.mapping.output, spec.decoder.input) == ("z", "w", "w")
    assert built.mapping_path is not None and built.mapping_path.is_file()
    assert spec.truncation_center is not None
    np.testing.assert_array_equal(built.truncation_center, mean_w(built.mapping_path, spec))
    np.testing.assert_array_equal(built.truncation_center, source.truncation_center)
    assert spec.encoder is not None and spec.provenance["source"] == "onnx"


def test_mean_w_is_mean_of_mapping(source: Bundle) -> None:
    assert source.mapping_path is not None
    w = TinyMapping(LATENT_DIM, W_DIM, 0).map(
        np.random.default_rng(5).standard_normal((10_000, LATENT_DIM)).astype(np.float32))
    got = mean_of_mapping(source.mapping_path, "z", "w", LATENT_DIM, seed=5)
    np.testing.assert_allclose(got, w.astype(np.float64).mean(axis=0), atol=1e-5)
    np.testing.assert_array_equal(got, mean_w(source.mapping_path, source.spec, seed=5))


def test_preview_is_mapped_prior_through_decoder(built: Bundle) -> None:
    """The probe (and preview) is z → mapping → decoder: the tiny numpy reference agrees."""
    gen = OnnxGenerator(built)
    z = seeding.sample_latents(0, 16, LATENT_DIM)
    w = TinyMapping(LATENT_DIM, W_DIM, 0).map(z)
    np.testing.assert_allclose(gen.sample_latents(0, 16), w, atol=1e-5)
    np.testing.assert_allclose(gen.decode(gen.sample_latents(0, 16)),
                               TinyWeights(W_DIM, (1, 8, 8), 0, 0).decode(w), atol=1e-5)
    assert (built.root / "preview.png").read_bytes().startswith(b"\x89PNG")


def test_decoder_width_is_checked_against_w_dim(source: Bundle, tmp_path: Path) -> None:
    one_stage = build_tiny_bundle(tmp_path / "one", latent_dim=5)
    assert source.mapping_path is not None
    with pytest.raises(BundleError, match=r"^mapping\.w_dim: .*decoder latent input 'z' has 5"):
        build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0)),
                     {"mapping": source.mapping_path, "decoder": one_stage.decoder_path})


def test_encoder_must_return_w_codes(source: Bundle, tmp_path: Path) -> None:
    one_stage = build_tiny_bundle(tmp_path / "one", latent_dim=4)
    assert source.mapping_path is not None and one_stage.encoder_path is not None
    with pytest.raises(BundleError, match=r"^mapping\.w_dim: .*encoder mean output 'mu'"):
        build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0)),
                     {"mapping": source.mapping_path, "decoder": source.decoder_path,
                      "encoder": one_stage.encoder_path})


def test_latent_dim_is_the_mapping_input(source: Bundle, tmp_path: Path) -> None:
    assert source.mapping_path is not None
    with pytest.raises(BundleError, match=r"^latent_dim: 6 was stated but mapping latent"):
        build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0), latent_dim=6),
                     {"mapping": source.mapping_path, "decoder": source.decoder_path})


def test_ambiguous_mapping_io_is_settled_by_names(source: Bundle, tmp_path: Path) -> None:
    path = _mapping_onnx(tmp_path / "m.onnx", inputs={"z": LATENT_DIM},
                         outputs={"w": W_DIM, "w_avg": W_DIM})
    with pytest.raises(BundleError, match=r"^mapping: cannot tell which output .*"
                                          r"--mapping-output"):
        build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0)),
                     {"mapping": path, "decoder": source.decoder_path})
    bundle = build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0)), {
        "mapping": OnnxComponent(path, {"output": "w"}), "decoder": source.decoder_path})
    assert bundle.spec.mapping is not None and bundle.spec.mapping.output == "w"
    with pytest.raises(BundleError, match=r"^mapping: --mapping-output 'nope' names no output"):
        build_bundle(tmp_path / "c", BundleOptions("c", (0.0, 1.0)), {
            "mapping": OnnxComponent(path, {"output": "nope"}), "decoder": source.decoder_path})


@pytest.mark.parametrize(("inputs", "outputs", "message"), [
    ({"z": LATENT_DIM}, {"w": "wdim"}, r"^mapping: output .* has no fixed W size"),
    ({"z": LATENT_DIM, "c": 3}, {"w": W_DIM},
     r"^mapping: cannot tell which input is the latent: .*--mapping-input"),
])
def test_bad_mappings_are_named(source: Bundle, tmp_path: Path, inputs: dict[str, int],
                                outputs: dict[str, int | str], message: str) -> None:
    path = _mapping_onnx(tmp_path / "m.onnx", inputs=inputs, outputs=outputs)
    with pytest.raises(BundleError, match=message):
        build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0)),
                     {"mapping": path, "decoder": source.decoder_path})


def test_cli_create_with_mapping(source: Bundle, tmp_path: Path) -> None:
    out = tmp_path / "my-gan"
    result = runner.invoke(app, ["bundle", "create", "--mapping", str(source.mapping_path),
                                 "--decoder", str(source.decoder_path), "--output-range", "0,1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "W of 6" in result.output
    raw = json.loads((out / SPEC_FILE).read_text())
    assert raw["editing_space"] == "w" and raw["mapping"]["w_dim"] == W_DIM
    check = runner.invoke(app, ["bundle", "check", str(out)])
    assert check.exit_code == 0, check.output
    bad = runner.invoke(app, ["bundle", "create", "--mapping", str(source.mapping_path),
                              "--mapping-input", "nope", "--decoder", str(source.decoder_path),
                              "--output-range", "0,1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "mapping: --mapping-input 'nope'" in bad.output


# ------------------------------------------------------------------ generator and evaluation


def test_onnx_generator_samples_like_the_service(built: Bundle) -> None:
    gen = OnnxGenerator(built)
    assert (gen.latent_dim, gen.editing_dim) == (LATENT_DIM, W_DIM)
    ref = ort.InferenceSession(str(built.mapping_path), providers=["CPUExecutionProvider"])
    z = np.concatenate([seeding.sample_latents(s, 1, LATENT_DIM) for s in (3, 4)])
    np.testing.assert_allclose(gen.seed_latents([3, 4]), ref.run(["w"], {"z": z})[0],
                               atol=1e-6)
    codes = gen.encode(gen.decode(gen.seed_latents([3, 4])))
    assert codes.shape == (2, W_DIM)


def test_evaluate_in_w_records_lerp_paths(built: Bundle) -> None:
    result = evaluate_bundle(built, sizes=SMALL)
    m = result.metrics
    assert {"path_length_lerp", "path_max_step_ratio_lerp", "onnx_determinism_max_abs_diff",
            "output_finite_fraction"} <= set(m)
    assert not {"path_length_slerp", "lerp_midpoint_norm_ratio"} & set(m)
    assert m["onnx_determinism_max_abs_diff"] <= 1e-5 and m["output_finite_fraction"] == 1.0
    assert "W (seeded z mapped to w)" in result.notes["path_length_lerp"]


# ------------------------------------------------------------------ directions in W


def test_sefa_in_w_reads_the_weights_on_w(built: Bundle) -> None:
    """SeFa as for StyleGAN: eigenvectors of AᵀA, A the weights reading w with unit rows."""
    found = discovery.sefa(built, 2, samples=2000)
    a = TinyWeights(W_DIM, (1, 8, 8), 0, 0).w_t.T.astype(np.float64)     # [64, w_dim]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    top = np.linalg.eigh(a.T @ a)[1][:, -1]
    assert abs(float(found[0].vector @ top)) == pytest.approx(1.0, abs=1e-6)
    assert "unit rows" in found[0].unit
    w = OnnxGenerator(built).sample_latents(0, 2000).astype(np.float64)
    assert found[0].vector.shape == (W_DIM,)
    assert found[0].sigma == pytest.approx(float(np.std(w @ found[0].vector)), rel=1e-5)
    assert found[0].sigma != pytest.approx(1.0, abs=1e-3)


def test_pca_in_w_is_pca_of_sampled_w(built: Bundle) -> None:
    found = discovery.pca(built, 3, samples=2000, names=["a", "b", "c"])
    w = OnnxGenerator(built).sample_latents(0, 2000).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(w.T))
    top = vectors[:, -1]
    assert abs(float(found[0].vector @ top)) == pytest.approx(1.0, abs=1e-5)
    assert found[0].sigma == pytest.approx(float(np.sqrt(values[-1])), rel=1e-3)
    assert [d.name for d in found] == ["a", "b", "c"] and found[0].vector.shape == (W_DIM,)
    with pytest.raises(BundleError, match=r"^layer: a two-stage bundle's PCA"):
        discovery.pca(built, 2, layer="flat")


def test_cli_discovers_w_directions(built: Bundle, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "b"
    shutil.copytree(built.root, root)
    sefa = runner.invoke(app, ["directions", "discover", str(root), "--method", "sefa",
                               "--k", "2"])
    assert sefa.exit_code == 0, sefa.output
    pca = runner.invoke(app, ["directions", "discover", str(root), "--method", "pca", "--k",
                              "2", "--names", "p0,p1", "--samples", "1000"])
    assert pca.exit_code == 0, pca.output
    gen = OnnxGenerator(built)
    w = gen.sample_latents(5, 200)
    labels = tmp_path / "labels.npz"
    np.savez(labels, latents=w, brightness=gen.decode(w).mean(axis=(1, 2, 3)))
    sup = runner.invoke(app, ["directions", "discover", str(root), "--method", "supervised",
                              "--labels", str(labels)])
    assert sup.exit_code == 0, sup.output
    images = tmp_path / "images.npz"
    np.savez(images, images=gen.decode(w), brightness=gen.decode(w).mean(axis=(1, 2, 3)))
    enc = runner.invoke(app, ["directions", "discover", str(root), "--method", "supervised",
                              "--labels", str(images), "--names", "bright_enc"])
    assert enc.exit_code == 0, enc.output
    bundle = load_bundle(root)
    assert {"sefa0", "sefa1", "p0", "p1", "brightness", "bright_enc"} <= set(bundle.directions)
    assert all(d.vector.shape == (W_DIM,) for d in bundle.directions.values())
    # the supervised normal points to brighter images: decode along it, brightness rises
    d = bundle.directions["brightness"]
    steps = OnnxGenerator(bundle).edit(w[:3], None, "brightness", [-2.0, 0.0, 2.0])
    mean = steps.mean(axis=(2, 3, 4))
    assert np.all(np.diff(mean, axis=1) > 0), (mean, d.sigma)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, latents=np.zeros((8, LATENT_DIM), np.float32), y=np.arange(8.0))
    bad = runner.invoke(app, ["directions", "discover", str(root), "--method", "supervised",
                              "--labels", str(wrong)])
    assert bad.exit_code == 2 and f"expected [8, {W_DIM}]" in bad.output


def test_conditional_two_stage(tmp_path: Path) -> None:
    """Labels go to the decoder (and encoder), never to the mapping."""
    src = build_tiny_bundle(tmp_path / "src", name="cond-w", num_classes=3, w_dim=W_DIM)
    assert src.mapping_path is not None and src.encoder_path is not None
    bundle = build_bundle(tmp_path / "b", BundleOptions("b", (0.0, 1.0), labels=["a", "b", "c"]),
                          {"mapping": src.mapping_path, "decoder": src.decoder_path,
                           "encoder": src.encoder_path})
    spec = bundle.spec
    assert spec.mapping is not None and spec.decoder.condition_input == "label"
    assert spec.encoder is not None and spec.encoder.condition_input == "label"
    gen = OnnxGenerator(bundle)
    w = gen.seed_latents([1, 2])
    np.testing.assert_allclose(gen.decode(w, [0, 2]),
                               TinyWeights(W_DIM, (1, 8, 8), 3, 0).decode(w, np.array([0, 2])),
                               atol=1e-5)
