"""Property and exact tests for the pure-numpy latent math (core/latent_ops.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentserve.core.latent_ops import (
    Method,
    edit_latents,
    interpolate_path,
    lerp,
    normalize,
    orthogonalize,
    slerp,
    truncate,
    vp_lerp,
)
from latentserve.core.seeding import sample_latents

METHODS: tuple[Method, ...] = ("lerp", "slerp", "vp_lerp")
INTERPOLATORS = {"lerp": lerp, "slerp": slerp, "vp_lerp": vp_lerp}

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


def vectors(dim: int) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    return hnp.arrays(np.float32, dim, elements=finite)


def pairs() -> st.SearchStrategy[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    return st.integers(1, 16).flatmap(lambda n: st.tuples(vectors(n), vectors(n)))


def bits(x: npt.NDArray[Any]) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).tobytes()


def unit_rows(rng: np.random.Generator, k: int, dim: int) -> npt.NDArray[np.float64]:
    h = rng.standard_normal((k, dim))
    unit: npt.NDArray[np.float64] = h / np.linalg.norm(h, axis=1, keepdims=True)
    return unit


# ----------------------------------------------------------------------------- truncation


@settings(max_examples=50, deadline=None)
@given(data=st.data(), dim=st.integers(1, 16), rows=st.integers(1, 4))
def test_truncate_psi_one_is_identity(data: st.DataObject, dim: int, rows: int) -> None:
    z = data.draw(hnp.arrays(np.float32, (rows, dim), elements=finite))
    center = data.draw(vectors(dim))
    assert bits(truncate(z, 1.0)) == bits(z)
    assert bits(truncate(z, 1.0, center)) == bits(z)
    assert bits(truncate(z[0], 1.0, center)) == bits(z[0])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), psi=st.floats(0.01, 3.0), dim=st.integers(1, 64))
def test_truncate_scales_distance_to_center(seed: int, psi: float, dim: int) -> None:
    z = sample_latents(seed, 3, dim)
    center = sample_latents(seed + 1, 1, dim)[0]
    out = truncate(z, psi, center).astype(np.float64)
    offset = z.astype(np.float64) - center
    np.testing.assert_allclose(out - center, psi * offset, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(truncate(z, psi), psi * z.astype(np.float64), rtol=1e-6)
    if psi < 1.0:  # shrinks toward the center
        dist = np.linalg.norm(out - center, axis=1)
        assert (dist <= np.linalg.norm(offset, axis=1) + 1e-5).all()


@pytest.mark.parametrize("psi", [0.0, -0.5, math.nan, math.inf])
def test_truncate_rejects_bad_psi(psi: float) -> None:
    with pytest.raises(ValueError, match="psi"):
        truncate(np.ones((2, 3), np.float32), psi)


def test_truncate_rejects_bad_center() -> None:
    with pytest.raises(ValueError, match="center"):
        truncate(np.ones((2, 3), np.float32), 0.5, np.zeros(4, np.float32))


# -------------------------------------------------------------------------- interpolation


@settings(max_examples=80, deadline=None)
@given(ab=pairs(), method=st.sampled_from(METHODS))
def test_endpoints_are_exact(
    ab: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], method: Method
) -> None:
    a, b = ab
    f = INTERPOLATORS[method]
    frames = f(a, b, [0.0, 0.5, 1.0])
    assert frames.shape == (3, a.shape[0]) and frames.dtype == np.float32
    assert bits(frames[0]) == bits(a) and bits(frames[2]) == bits(b)
    assert bits(f(a, b, 0.0)) == bits(a) and bits(f(a, b, 1.0)) == bits(b)


@settings(max_examples=80, deadline=None)
@given(ab=pairs(), t=st.floats(-2.0, 3.0), method=st.sampled_from(METHODS))
def test_never_nan_for_arbitrary_inputs(
    ab: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], t: float, method: Method
) -> None:
    a, b = ab
    f = INTERPOLATORS[method]
    for other in (b, a, -a, 3 * a, np.zeros_like(a)):  # arbitrary, parallel, antiparallel, zero
        assert not np.isnan(f(a, other, [t, 0.5])).any()
        assert not np.isnan(f(other, a, t)).any()


@pytest.mark.parametrize("method", METHODS)
def test_degenerate_pairs_fall_back_without_nan(method: Method) -> None:
    f = INTERPOLATORS[method]
    a = np.array([1.0, 2.0, -3.0], np.float32)
    ts = np.linspace(0.0, 1.0, 5)
    for b in (np.zeros(3, np.float32), -a, a, 2 * a, a + np.array([0.0, 0.0, 1e-6], np.float32)):
        out = f(a, b, ts)
        assert np.isfinite(out).all()
    zero = np.zeros(3, np.float32)
    assert bits(f(zero, zero, ts)) == bits(np.zeros((5, 3)))


def test_slerp_equals_lerp_for_parallel_and_antiparallel() -> None:
    a = np.array([0.5, -1.0, 2.0], np.float32)
    ts = np.linspace(0.0, 1.0, 7)
    for b in (a, 3 * a, -a, -0.25 * a):
        np.testing.assert_array_equal(slerp(a, b, ts), lerp(a, b, ts))


def test_slerp_follows_the_great_circle() -> None:
    ts = np.linspace(0.0, 1.0, 11)
    out = slerp([1.0, 0.0], [0.0, 1.0], ts)
    expected = np.stack([np.cos(ts * np.pi / 2), np.sin(ts * np.pi / 2)], axis=1)
    np.testing.assert_allclose(out, expected, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    dim=st.integers(2, 256),
    ts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
)
def test_slerp_keeps_unit_norm(seed: int, dim: int, ts: list[float]) -> None:
    rng = np.random.default_rng(seed)
    a, b = unit_rows(rng, 2, dim).astype(np.float32)
    # Near-antiparallel unit pairs are ill-conditioned (float32 norm rounding dominates).
    assume(float(np.dot(a, b)) > -0.99)
    norms = np.linalg.norm(slerp(a, b, ts).astype(np.float64), axis=1)
    assert np.abs(norms - 1.0).max() < 1e-5


def test_vp_lerp_preserves_variance_where_lerp_halves_it() -> None:
    a, b = sample_latents(7, 2, 4096).astype(np.float64)
    assert abs(vp_lerp(a, b, 0.5).var() - 1.0) < 0.1
    assert abs(lerp(a, b, 0.5).var() - 0.5) < 0.05
    for t in (0.1, 0.3, 0.7):
        assert abs(vp_lerp(a, b, t).var() - 1.0) < 0.1


@settings(max_examples=50, deadline=None)
@given(ab=pairs(), t=st.floats(-1.0, 2.0))
def test_lerp_and_vp_lerp_formulas(
    ab: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], t: float
) -> None:
    a, b = (x.astype(np.float64) for x in ab)
    mixed = (1 - t) * a + t * b
    np.testing.assert_allclose(lerp(a, b, t), mixed, rtol=1e-6, atol=1e-6)
    scale = math.sqrt((1 - t) ** 2 + t**2)
    np.testing.assert_allclose(vp_lerp(a, b, t), mixed / scale, rtol=1e-6, atol=1e-6)


def test_interpolation_rejects_bad_inputs() -> None:
    a = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="same shape"):
        lerp(a, np.zeros(4), 0.5)
    with pytest.raises(ValueError, match="t "):
        slerp(a, a, [math.nan])
    with pytest.raises(ValueError, match="t must be"):
        vp_lerp(a, a, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="b contains NaN"):
        slerp(a, [0.0, math.inf, 0.0], 0.5)
    with pytest.raises(ValueError, match="a must be 1-D"):
        lerp(np.zeros((2, 3)), a, 0.5)


# ---------------------------------------------------------------------------------- paths


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    k=st.integers(2, 5),
    steps=st.integers(2, 9),
    dim=st.integers(1, 12),
    method=st.sampled_from(METHODS),
)
def test_path_frames_and_keyframes(seed: int, k: int, steps: int, dim: int, method: Method) -> None:
    keyframes = sample_latents(seed, k, dim)
    path = interpolate_path(keyframes, steps, method)
    assert path.shape == ((k - 1) * (steps - 1) + 1, dim) and path.dtype == np.float32
    ts = np.linspace(0.0, 1.0, steps)
    for j in range(k - 1):
        segment = path[j * (steps - 1) : (j + 1) * (steps - 1) + 1]
        assert bits(segment) == bits(INTERPOLATORS[method](keyframes[j], keyframes[j + 1], ts))
    for j in range(k):
        assert bits(path[j * (steps - 1)]) == bits(keyframes[j])


@pytest.mark.parametrize(
    ("keyframes", "steps", "method", "match"),
    [
        (np.zeros((1, 3)), 5, "lerp", "at least 2"),
        (np.zeros(3), 5, "lerp", "keyframes must be 2-D"),
        (np.zeros((2, 3)), 1, "lerp", "steps"),
        (np.zeros((2, 3)), 5, "cubic", "method"),
        (np.zeros((2, 3)), 5, "SLERP", "method"),
        (np.full((2, 3), math.nan), 5, "lerp", "keyframes contains NaN"),
    ],
)
def test_path_rejects_bad_arguments(
    keyframes: npt.NDArray[np.float64], steps: int, method: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        interpolate_path(keyframes, steps, method)


# ---------------------------------------------------------------------------- directions


def test_normalize() -> None:
    np.testing.assert_allclose(normalize([3.0, 4.0]), [0.6, 0.8], rtol=1e-7)
    assert normalize(np.array([0.0, -2.0])).dtype == np.float32
    with pytest.raises(ValueError, match="zero vector"):
        normalize([0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        normalize([1.0, math.nan])


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    dim=st.integers(3, 96),
    k=st.integers(0, 6),
    extra=st.sampled_from(["none", "duplicate", "combination", "near_duplicate"]),
)
def test_orthogonalize_is_unit_and_orthogonal_to_held(
    seed: int, dim: int, k: int, extra: str
) -> None:
    rng = np.random.default_rng(seed)
    k = min(k, dim - 2)
    held = list(unit_rows(rng, k, dim))
    if held and extra == "duplicate":
        held.append(held[0].copy())
    elif len(held) >= 2 and extra == "combination":
        held.append(normalize(held[0] + 2 * held[1]).astype(np.float64))
    elif held and extra == "near_duplicate":
        held.append(normalize(held[0] + 1e-9 * rng.standard_normal(dim)).astype(np.float64))
    direction = (3.0 * rng.standard_normal(dim)).astype(np.float32)
    if held:  # a direction (almost) inside the span is refused, by design: tested elsewhere
        span = np.linalg.svd(np.stack(held), full_matrices=False)[2]
        off_span = direction - span.T @ (span @ direction)
        assume(np.linalg.norm(off_span) > 0.01 * np.linalg.norm(direction))
    out = orthogonalize(direction, [h.astype(np.float32) for h in held])
    assert out.dtype == np.float32 and out.shape == (dim,)
    assert abs(float(np.linalg.norm(out.astype(np.float64))) - 1.0) < 1e-5
    for h in held:
        assert abs(float(np.dot(out, h))) < 1e-5
    assert float(np.dot(out, direction)) > 0.0  # the same side as the original direction


def test_orthogonalize_matches_gram_schmidt() -> None:
    d = np.array([1.0, 1.0, 1.0])
    held = [np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0])]
    np.testing.assert_allclose(orthogonalize(d, held), [0.0, 0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(orthogonalize(d, []), normalize(d), rtol=1e-7)
    np.testing.assert_allclose(orthogonalize([1.0, 1.0], [[5.0, 0.0]]), [0.0, 1.0], atol=1e-7)


def test_orthogonalize_rejects_direction_in_span() -> None:
    rng = np.random.default_rng(0)
    h = unit_rows(rng, 3, 32)
    in_span = 0.5 * h[0] - 2.0 * h[2]
    with pytest.raises(ValueError, match=r"lies \(almost\) in the span"):
        orthogonalize(in_span, list(h))
    nearly = h[1] + 1e-5 * rng.standard_normal(32)
    with pytest.raises(ValueError, match="span"):
        orthogonalize(nearly, [h[1]])
    with pytest.raises(ValueError, match="span"):
        orthogonalize(h[0], [h[0], h[0]])
    out = orthogonalize(nearly, [h[1]], min_residual=1e-6)  # a looser bound accepts it
    assert abs(float(np.dot(out, h[1]))) < 1e-5


def test_orthogonalize_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="direction is the zero vector"):
        orthogonalize(np.zeros(4), [np.ones(4)])
    with pytest.raises(ValueError, match=r"held\[1\]"):
        orthogonalize(np.ones(4), [np.ones(4), np.ones(5)])
    with pytest.raises(ValueError, match=r"held\[0\] contains NaN"):
        orthogonalize(np.ones(4), [np.full(4, math.nan)])
    with pytest.raises(ValueError, match="min_residual"):
        orthogonalize(np.ones(4), [], min_residual=-1.0)


# ---------------------------------------------------------------------------------- edits


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    rows=st.integers(1, 4),
    dim=st.integers(1, 32),
    strengths=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=5),
    sigma=st.floats(0.01, 10.0),
    scale=st.floats(0.1, 10.0),
)
def test_edit_rows_are_base_major(
    seed: int, rows: int, dim: int, strengths: list[float], sigma: float, scale: float
) -> None:
    base = sample_latents(seed, rows, dim)
    direction = scale * sample_latents(seed + 1, 1, dim)[0]
    out = edit_latents(base, direction, np.array(strengths, np.float32), sigma)
    n_s = len(strengths)
    assert out.shape == (rows * n_s, dim) and out.dtype == np.float32
    d_hat = direction.astype(np.float64) / np.linalg.norm(direction.astype(np.float64))
    for b in range(rows):
        for s, alpha in enumerate(np.array(strengths, np.float32)):
            expected = base[b] + float(alpha) * sigma * d_hat
            np.testing.assert_allclose(out[b * n_s + s], expected, rtol=1e-5, atol=1e-5)
            if alpha == 0.0:
                assert bits(out[b * n_s + s]) == bits(base[b])


def test_edit_zero_strength_returns_base_bit_for_bit() -> None:
    base = np.array([[-0.0, 1.5, -2.0], [0.0, -0.0, 3.0]], np.float32)
    out = edit_latents(base, [1.0, 1.0, 1.0], np.array([0.0, 1.0, -0.0], np.float32), 2.0)
    for b in range(2):
        assert bits(out[3 * b]) == bits(base[b]) and bits(out[3 * b + 2]) == bits(base[b])
        np.testing.assert_allclose(out[3 * b + 1], base[b] + 2.0 / math.sqrt(3.0), rtol=1e-6)


def test_conditional_edit_keeps_held_projections() -> None:
    rng = np.random.default_rng(3)
    held = list(unit_rows(rng, 2, 64).astype(np.float32))
    d = orthogonalize(rng.standard_normal(64), held)
    base = sample_latents(9, 3, 64)
    out = edit_latents(base, d, np.array([-3.0, 0.0, 2.5], np.float32), 1.7)
    moved = out.reshape(3, 3, 64).astype(np.float64) - base[:, None, :]
    for h in held:
        assert np.abs(moved @ h).max() < 1e-4


def test_edit_rejects_bad_inputs() -> None:
    base = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="sigma"):
        edit_latents(base, [1.0, 0.0, 0.0], [1.0], 0.0)
    with pytest.raises(ValueError, match="direction is the zero vector"):
        edit_latents(base, [0.0, 0.0, 0.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="direction has size 2"):
        edit_latents(base, [1.0, 0.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="base must be 2-D"):
        edit_latents(np.zeros(3), [1.0, 0.0, 0.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="strengths contains NaN"):
        edit_latents(base, [1.0, 0.0, 0.0], [math.nan], 1.0)


# -------------------------------------------------------------------------------- imports


@pytest.mark.parametrize("module", ["latent_ops", "seeding"])
def test_module_needs_only_numpy(module: str) -> None:
    code = (
        f"import sys, latentserve.core.{module}\n"
        "heavy = {'grpc', 'onnxruntime', 'mlflow', 'torch', 'pydantic', 'google.protobuf'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
