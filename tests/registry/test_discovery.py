"""Direction discovery for any bundle (SeFa, GANSpace PCA, InterFaceGAN) and
`latentserve directions discover/add`, checked against NumPy references and planted truths;
the same methods on given arrays, as the shipped generators' training runs call them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from latentserve.core.seeding import sample_latents
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.onnx_graph import first_latent_layer
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.quality import discovery
from latentserve.registry.quality.direction_fits import (
    as_arrays,
    fit_metrics,
    pca_of_latents,
    ridge_normal,
    sefa_from_matrix,
    supervised,
)
from tests.fixtures.cli import run_cli
from tests.fixtures.tiny import TinyWeights, build_tiny_bundle


def _reference_sefa(a: np.ndarray, k: int) -> np.ndarray:
    values, vectors = np.linalg.eigh(a.T @ a)
    out = vectors[:, np.argsort(values)[::-1][:k]].T
    return np.stack([v * np.sign(v[np.argmax(np.abs(v))]) for v in out])


def _graph_bundle(tmp_path: Path, nodes: list[onnx.NodeProto],
                  inits: dict[str, np.ndarray], latent_dim: int) -> Bundle:
    graph = helper.make_graph(
        nodes, "dec", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["b", latent_dim])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "dec.onnx"
    onnx.save_model(model, str(path))
    return build_bundle(tmp_path / "b", BundleOptions(name="g", output_range=(0.0, 1.0)),
                        {"decoder": path})


def test_sefa_matches_numpy_eigenvectors_of_the_first_weight(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t", latent_dim=6)
    found = discovery.sefa(bundle, k=6)
    weights = TinyWeights(6, (1, 8, 8), 0, 0)
    expected = _reference_sefa(weights.w_t.T.astype(np.float64), 6)
    np.testing.assert_allclose(np.stack([d.vector for d in found]), expected, atol=1e-5)
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(found[0].vector, weights.sefa(), atol=1e-5)
    assert [d.name for d in found] == [f"sefa{i}" for i in range(6)]


def test_sefa_reads_gemm_and_conv_transpose_through_reshapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gemm_w = rng.standard_normal((16, 5)).astype(np.float32)     # [out, N], transB = 1
    nodes = [helper.make_node("Gemm", ["z", "w", "bias"], ["h"], transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["x"])]
    bundle = _graph_bundle(tmp_path / "gemm", nodes, {
        "w": gemm_w, "bias": np.zeros(16, np.float32),
        "shape": np.array([-1, 1, 4, 4], np.int64)}, 5)
    np.testing.assert_allclose(np.stack([d.vector for d in discovery.sefa(bundle, 3)]),
                               _reference_sefa(gemm_w.astype(np.float64), 3), atol=1e-5)

    conv_w = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)  # [N, out_c, kh, kw]
    nodes = [helper.make_node("Reshape", ["z", "zshape"], ["z4"]),
             helper.make_node("ConvTranspose", ["z4", "w"], ["h"]),
             helper.make_node("Sigmoid", ["h"], ["x"])]
    bundle = _graph_bundle(tmp_path / "conv", nodes, {
        "w": conv_w, "zshape": np.array([-1, 5, 1, 1], np.int64)}, 5)
    model = onnx.load(str(bundle.decoder_path))
    layer = first_latent_layer(model, "z", 5)
    assert layer.op == "ConvTranspose" and layer.matrix.shape == (16, 5)
    a = conv_w.reshape(5, 16).T.astype(np.float64)
    np.testing.assert_allclose(np.stack([d.vector for d in discovery.sefa(bundle, 2)]),
                               _reference_sefa(a, 2), atol=1e-5)
    with pytest.raises(BundleError, match=r"^weight: the decoder has no initializer named"):
        discovery.sefa(bundle, 2, weight="nope")


def test_pca_finds_the_dominant_latent_axis(tmp_path: Path) -> None:
    scale = np.full(4, 0.05, np.float32)
    scale[2] = 1.0                        # latent axis 2 moves the activations most
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((4, 16)) * scale[:, None]).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["z", "w"], ["h"]),
             helper.make_node("Tanh", ["h"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["x"])]
    bundle = _graph_bundle(tmp_path, nodes, {"w": w, "shape": np.array([-1, 1, 4, 4], np.int64)},
                           4)
    found = discovery.pca(bundle, k=2, samples=2048)
    assert abs(float(found[0].vector[2])) > 0.99 and found[0].vector[2] > 0
    assert found[0].sigma == pytest.approx(1.0, abs=0.05)
    assert found[0].score > 0.9
    assert "'a'" in found[0].unit        # the first activation after the latent layer


def test_pca_of_given_latents_uses_their_variance() -> None:
    z = sample_latents(0, 3000, 3).astype(np.float64) * np.array([0.2, 3.0, 1.0])
    found = pca_of_latents(z, 2)
    np.testing.assert_allclose(np.abs(found[0].vector), [0, 1, 0], atol=0.02)
    assert found[0].sigma == pytest.approx(3.0, rel=0.05)


def test_supervised_recovers_planted_normals(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3000, 4))
    normal = np.array([0.5, -0.5, 0.5, 0.5])
    score = z @ normal + 0.1 * rng.standard_normal(3000)
    labels = tmp_path / "labels.npz"
    np.savez(labels, latents=z.astype(np.float32), size=score, smiling=(score > 0.3).astype(int))
    bundle = build_tiny_bundle(tmp_path / "t")
    code, text = run_cli("directions", "discover", str(bundle.root), "--method", "supervised",
                      "--labels", str(labels))
    assert code == 0, text
    loaded = load_bundle(bundle.root)
    for name in ("size", "smiling"):
        d = loaded.directions[name]
        assert float(d.vector @ normal) > 0.98, name
        assert d.spec.method == "supervised"
        assert d.sigma == pytest.approx(float(np.std(z @ d.vector)), rel=1e-3)
    assert loaded.spec.metrics["direction_fit_size"] > 0.95


def test_discover_sefa_cli_writes_named_directions(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t")
    code, text = run_cli("directions", "discover", str(bundle.root), "--method", "sefa", "--k", "2",
                      "--names", "first,second")
    assert code == 0, text
    loaded = load_bundle(bundle.root)
    assert {"first", "second"} <= set(loaded.directions)
    assert loaded.directions["first"].spec.method == "sefa"
    code, text = run_cli("directions", "discover", str(bundle.root), "--method", "sefa", "--k", "2",
                      "--names", "first,second")
    assert code == 2 and "error: name: the bundle already has a direction 'first'" in text
    code, text = run_cli("directions", "discover", str(bundle.root), "--method", "pca", "--k", "9")
    assert code == 2 and "k: must be in 1..4" in text


def test_directions_add_validates_and_normalises(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t")
    good = tmp_path / "good.npy"
    np.save(good, np.array([[3.0, 0.0, 4.0, 0.0]]))
    code, text = run_cli("directions", "add", str(bundle.root), "--name", "mine", "--vector",
                      str(good), "--factor", "ink")
    assert code == 0, text
    d = load_bundle(bundle.root).directions["mine"]
    np.testing.assert_allclose(d.vector, [0.6, 0.0, 0.8, 0.0], atol=1e-7)
    assert (d.spec.method, d.spec.factor, d.sigma) == ("user", "ink", 1.0)
    for values, message in (([1.0, 2.0, 3.0], "vector: 'x' has shape [3]; the latent size is 4"),
                            ([1.0, np.nan, 0.0, 0.0], "vector: 'x' has non-finite values"),
                            ([0.0] * 4, "vector: 'x' is zero")):
        bad = tmp_path / "bad.npy"
        np.save(bad, np.array(values))
        code, text = run_cli("directions", "add", str(bundle.root), "--name", "x", "--vector",
                          str(bad))
        assert code == 2 and message in text, text
    code, text = run_cli("directions", "add", str(bundle.root), "--name", "mine", "--vector",
                      str(good))
    assert code == 2 and "already has a direction 'mine'" in text
    code, text = run_cli("directions", "add", str(bundle.root), "--name", "a b", "--vector",
                      str(good))
    assert code == 2 and "name:" in text


# The methods on given arrays (`direction_fits`), as the shipped generators' runs call them, on a
# synthetic linear generator whose true directions are known.

N = 8
SCALES = np.array([1.0, 5.0, 0.3, 3.0, 0.1, 2.0, 0.5, 4.0])  # deliberately unsorted


@pytest.fixture(scope="module")
def basis() -> np.ndarray:
    """A random orthonormal basis of R^N: the true directions (columns)."""
    q: np.ndarray = np.asarray(np.linalg.qr(np.random.default_rng(0).standard_normal((N, N)))[0])
    return q


@pytest.fixture(scope="module")
def generator_weight(basis: np.ndarray) -> np.ndarray:
    """A linear generator x = A z (64 pixels) with A = U diag(SCALES) Qᵀ."""
    u, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((64, N)))
    weight: np.ndarray = u @ np.diag(SCALES) @ basis.T
    return weight


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return abs(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))


def test_supervised_regression_recovers_the_readout_direction(generator_weight: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4000, N))
    images = z @ generator_weight.T
    readout = rng.standard_normal(64)  # a factor measured on the image
    factor = images @ readout + 0.05 * rng.standard_normal(4000)
    truth = generator_weight.T @ readout
    d, = supervised(z, {"brightness": factor}, penalty=1.0, meaning={"brightness": "brighter"})
    assert _cos(d.vector, truth) >= 0.99
    assert float(d.vector @ truth) > 0  # points towards larger values
    assert abs(np.linalg.norm(d.vector) - 1) < 1e-6 and d.vector.dtype == np.float32
    assert d.sigma == pytest.approx(np.std(z @ d.vector), rel=1e-6)
    assert 0.95 < d.sigma < 1.05  # N(0, I) latents: σ along any unit vector ≈ 1
    assert d.score > 0.99 and d.method == "supervised" and "positive = brighter" in d.unit
    assert replace(d, factor="brightness").spec().factor == "brightness"
    metrics, notes = fit_metrics([d])
    assert metrics == {"direction_fit_brightness": d.score}
    assert notes["direction_fit_brightness"].startswith("held-out R² of the linear model")


def test_ridge_penalty_is_sklearns_alpha() -> None:
    """penalty=1.0 is scikit-learn's Ridge(alpha=1.0) with an intercept (closed form)."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((200, 3))
    y = z @ np.array([1.0, -2.0, 0.5]) + 3.0 + 0.1 * rng.standard_normal(200)
    w, b = ridge_normal(z, y, penalty=1.0)
    zc, yc = z - z.mean(axis=0), y - y.mean()
    expected = np.linalg.inv(zc.T @ zc + np.eye(3)) @ zc.T @ yc
    np.testing.assert_allclose(w, expected, rtol=1e-10)
    assert b == pytest.approx(y.mean() - z.mean(axis=0) @ expected)


def test_supervised_classification_recovers_the_boundary_normal(basis: np.ndarray) -> None:
    z = np.random.default_rng(3).standard_normal((4000, N))
    label = (z @ basis[:, 2] > 0.3).astype(float)
    d, = supervised(z, {"shape_heart": label}, penalty=1.0)
    assert _cos(d.vector, basis[:, 2]) >= 0.99
    assert float(d.vector @ basis[:, 2]) > 0  # towards the positive class
    assert d.score > 0.95 and d.score_name == "held-out accuracy"


def test_pca_recovers_components_sorted_by_variance(basis: np.ndarray) -> None:
    g = np.random.default_rng(4).standard_normal((20000, N))
    latents = (g * SCALES) @ basis.T + 3.0  # offset: PCA centres first
    found = pca_of_latents(latents, k=4)
    order = np.argsort(SCALES)[::-1]
    assert [d.name for d in found] == ["pc0", "pc1", "pc2", "pc3"]
    for d, i in zip(found, order[:4], strict=True):
        assert _cos(d.vector, basis[:, i]) >= 0.99
        assert d.sigma == pytest.approx(SCALES[i], rel=0.03)
        assert d.vector[np.argmax(np.abs(d.vector))] > 0  # canonical sign
    ratios = [d.score for d in found]
    assert ratios == sorted(ratios, reverse=True)
    assert ratios[0] == pytest.approx(25 / np.sum(SCALES**2), rel=0.05)


def test_sefa_recovers_eigenvectors_sorted_by_eigenvalue(
    basis: np.ndarray, generator_weight: np.ndarray
) -> None:
    found = sefa_from_matrix(generator_weight, k=N)
    order = np.argsort(SCALES)[::-1]
    for d, i in zip(found, order, strict=True):
        assert _cos(d.vector, basis[:, i]) >= 0.99
        assert d.score == pytest.approx(SCALES[i] ** 2, rel=1e-6)
        assert d.sigma == 1.0  # no latents: the prior's σ
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    latents = np.random.default_rng(5).standard_normal((5000, N)) * 2.0
    with_sigma = sefa_from_matrix(generator_weight, k=2, latents=latents, names=["s0", "s1"])
    assert [d.name for d in with_sigma] == ["s0", "s1"]
    assert with_sigma[0].sigma == pytest.approx(2.0, rel=0.05)


def test_as_arrays_is_what_write_bundle_takes() -> None:
    found = pca_of_latents(np.random.default_rng(6).standard_normal((100, N)), k=2)
    arrays = as_arrays(found)
    assert list(arrays) == ["pc0", "pc1"]
    vector, sigma = arrays["pc0"]
    assert vector.dtype == np.float32 and vector.shape == (N,) and sigma > 0


def test_bad_arrays_name_what_is_wrong() -> None:
    z = np.random.default_rng(7).standard_normal((50, N))
    with pytest.raises(BundleError, match="'scale' is constant"):
        supervised(z, {"scale": np.ones(50)})
    with pytest.raises(BundleError, match="'scale' must be 50 finite"):
        supervised(z, {"scale": np.ones(49)})
    with pytest.raises(BundleError, match="'scale' must be 50 finite"):
        supervised(z, {"scale": np.full(50, np.nan)})
    with pytest.raises(BundleError, match="latents"):
        pca_of_latents(np.full((10, N), np.inf), k=2)
    with pytest.raises(BundleError, match="k: must be"):
        pca_of_latents(z, k=N + 1)
    with pytest.raises(BundleError, match="weight"):
        sefa_from_matrix(np.zeros(3), k=1)
    with pytest.raises(BundleError, match="latents: 9 dims"):
        sefa_from_matrix(np.ones((4, N)), k=1, latents=np.ones((5, N + 1)))
