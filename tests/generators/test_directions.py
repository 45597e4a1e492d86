"""Direction discovery on a synthetic linear generator whose true directions are known."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.generators.directions import (
    as_arrays,
    pca_directions,
    sefa_directions,
    supervised_direction,
)

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
    d = supervised_direction("brightness", z, factor, factor="brightness", meaning="brighter")
    assert _cos(d.vector, truth) >= 0.99
    assert float(d.vector @ truth) > 0  # points towards larger values
    assert abs(np.linalg.norm(d.vector) - 1) < 1e-6 and d.vector.dtype == np.float32
    assert d.sigma == pytest.approx(np.std(z @ d.vector), rel=1e-6)
    assert 0.95 < d.sigma < 1.05  # N(0, I) latents: σ along any unit vector ≈ 1
    assert d.score > 0.99 and d.method == "supervised" and "positive = brighter" in d.unit
    assert d.spec().factor == "brightness"


def test_supervised_classification_recovers_the_boundary_normal(basis: np.ndarray) -> None:
    z = np.random.default_rng(3).standard_normal((4000, N))
    label = (z @ basis[:, 2] > 0.3).astype(float)
    d = supervised_direction("shape_heart", z, label, kind="classification", factor="shape")
    assert _cos(d.vector, basis[:, 2]) >= 0.99
    assert float(d.vector @ basis[:, 2]) > 0  # towards the positive class
    assert d.score > 0.95


def test_pca_recovers_components_sorted_by_variance(basis: np.ndarray) -> None:
    g = np.random.default_rng(4).standard_normal((20000, N))
    latents = (g * SCALES) @ basis.T + 3.0  # offset: PCA centres first
    found = pca_directions(latents, k=4)
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
    found = sefa_directions(generator_weight, k=N)
    order = np.argsort(SCALES)[::-1]
    for d, i in zip(found, order, strict=True):
        assert _cos(d.vector, basis[:, i]) >= 0.99
        assert d.score == pytest.approx(SCALES[i] ** 2, rel=1e-6)
        assert d.sigma == 1.0  # no latents: the prior's σ
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    latents = np.random.default_rng(5).standard_normal((5000, N)) * 2.0
    with_sigma = sefa_directions(generator_weight, k=2, latents=latents, prefix="s")
    assert [d.name for d in with_sigma] == ["s0", "s1"]
    assert with_sigma[0].sigma == pytest.approx(2.0, rel=0.05)


def test_as_arrays_is_what_write_bundle_takes(basis: np.ndarray) -> None:
    found = pca_directions(np.random.default_rng(6).standard_normal((100, N)), k=2)
    arrays = as_arrays(found)
    assert list(arrays) == ["pc0", "pc1"]
    vector, sigma = arrays["pc0"]
    assert vector.dtype == np.float32 and vector.shape == (N,) and sigma > 0


def test_bad_input_names_what_is_wrong() -> None:
    z = np.random.default_rng(7).standard_normal((50, N))
    with pytest.raises(ValueError, match="scale: target is constant"):
        supervised_direction("scale", z, np.ones(50))
    with pytest.raises(ValueError, match="scale: target has shape"):
        supervised_direction("scale", z, np.ones(49))
    with pytest.raises(ValueError, match="non-finite"):
        supervised_direction("scale", z, np.full(50, np.nan))
    with pytest.raises(ValueError, match="0/1"):
        supervised_direction("shape", z, np.arange(50.0), kind="classification")
    with pytest.raises(ValueError, match="latents"):
        pca_directions(np.full((10, N), np.inf), k=2)
    with pytest.raises(ValueError, match="k must be"):
        pca_directions(z, k=N + 1)
    with pytest.raises(ValueError, match="weight"):
        sefa_directions(np.zeros(3), k=1)
    with pytest.raises(ValueError, match="latents have"):
        sefa_directions(np.ones((4, N)), k=1, latents=np.ones((5, N + 1)))
