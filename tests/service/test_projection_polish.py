"""The projection's Levenberg–Marquardt polish on decoders whose optimum is known."""

from __future__ import annotations

import numpy as np

from latentserve.service.projection_polish import Polish


def _linear(weights: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A linear 'decoder' to images [n, 1, 4, 4]."""
    return (np.asarray(z, np.float64) @ weights.T).reshape(len(z), 1, 4, 4).astype(np.float32)


def test_a_linear_decoder_is_solved_in_one_step() -> None:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((16, 3)) * 0.1
    truth = rng.standard_normal((2, 3))
    start = truth + 0.5 * rng.standard_normal((2, 3))
    polish = Polish(start.astype(np.float32), _linear(weights, start), _linear(weights, truth),
                    np.ones(3))
    rows, owner = polish.perturbations()
    assert rows.shape == (6, 3) and owner.tolist() == [0, 0, 0, 1, 1, 1]
    candidates = polish.propose(_linear(weights, rows))
    np.testing.assert_allclose(candidates, truth, atol=5e-3)


def test_only_better_candidates_are_kept_and_damping_adapts() -> None:
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((16, 2))
    start = np.zeros((2, 2))
    polish = Polish(start.astype(np.float32), _linear(weights, start),
                    _linear(weights, np.ones((2, 2))), np.ones(2))
    rows, _ = polish.perturbations()
    candidates = polish.propose(_linear(weights, rows))
    before = polish.mu.copy()
    polish.settle(_linear(weights, candidates), np.array([True, False]))
    assert np.allclose(polish.x[0], candidates[0], atol=1e-6) and np.all(polish.x[1] == 0.0)
    assert polish.mu[0] < before[0] < polish.mu[1]
