"""The dSprites-spec renderer: factor grid, determinism, geometry, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from latentserve.generators.sprites import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    SHAPES,
    factor_values,
    indices_to_values,
    render,
    render_indices,
    sample_factor_indices,
)


def _centroid(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    mass = img.sum()
    return float((img * xs).sum() / mass), float((img * ys).sum() / mass)


def test_factor_grid_matches_the_dsprites_spec() -> None:
    assert FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert SHAPES == ("square", "ellipse", "heart")
    assert {f: len(factor_values(f)) for f in FACTOR_NAMES} == FACTOR_SIZES
    assert FACTOR_SIZES == {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}
    scale = factor_values("scale")
    assert scale[0] == 0.5 and scale[-1] == 1.0
    orientation = factor_values("orientation")
    assert orientation[0] == 0.0 and orientation[-1] < 2 * np.pi
    assert np.allclose(np.diff(orientation), 2 * np.pi / 40)
    for pos in ("pos_x", "pos_y"):
        assert factor_values(pos)[0] == 0.0 and factor_values(pos)[-1] == 1.0


def test_sampled_indices_cover_the_grid_and_are_seeded() -> None:
    idx = sample_factor_indices(4000, seed=3)
    assert idx.shape == (4000, 5) and idx.dtype == np.int64
    for i, f in enumerate(FACTOR_NAMES):
        assert idx[:, i].min() == 0 and idx[:, i].max() == FACTOR_SIZES[f] - 1
    assert np.array_equal(idx, sample_factor_indices(4000, seed=3))
    assert not np.array_equal(idx, sample_factor_indices(4000, seed=4))
    assert not np.array_equal(idx, sample_factor_indices(4000, seed=3, stream=1))
    values = indices_to_values(idx)
    assert values[:, 1].min() >= 0.5 and values[:, 1].max() <= 1.0
    assert values[:, 2].min() >= 0.0 and values[:, 2].max() < 2 * np.pi


def test_rendering_is_deterministic_and_in_range() -> None:
    idx = sample_factor_indices(64, seed=0)
    a, b = render_indices(idx), render_indices(idx, chunk=7)
    assert a.shape == (64, 1, 64, 64) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.all(a.reshape(64, -1).sum(axis=1) > 10)  # every sprite is visible
    # 4×4 supersampling: pixel values are multiples of 1/16
    assert np.allclose(a * 16, np.round(a * 16))


def test_factors_move_the_sprite_as_named() -> None:
    n = 5
    base: dict[str, Any] = dict(shape=["square"] * n, orientation=[0.0] * n)
    xs = render(**base, scale=[0.75] * n, pos_x=np.linspace(0, 1, n), pos_y=[0.5] * n)
    cx = [_centroid(img[0])[0] for img in xs]
    assert np.all(np.diff(cx) > 5)  # pos_x: left → right
    ys = render(**base, scale=[0.75] * n, pos_x=[0.5] * n, pos_y=np.linspace(0, 1, n))
    cy = [_centroid(img[0])[1] for img in ys]
    assert np.all(np.diff(cy) > 5)  # pos_y: top → bottom
    sizes = render(**base, scale=np.linspace(0.5, 1, n), pos_x=[0.5] * n, pos_y=[0.5] * n)
    assert np.all(np.diff(sizes.sum(axis=(1, 2, 3))) > 0)  # scale: larger sprite


def test_symmetric_shapes_repeat_with_their_symmetry() -> None:
    def one(shape: str, angle: float) -> np.ndarray:
        return render(shape=[shape], scale=[1.0], orientation=[angle], pos_x=[0.5], pos_y=[0.5])

    assert np.abs(one("square", 0.3) - one("square", 0.3 + np.pi / 2)).max() < 0.07
    assert np.abs(one("ellipse", 0.3) - one("ellipse", 0.3 + np.pi)).max() < 0.07
    assert np.abs(one("heart", 0.3) - one("heart", 0.3 + np.pi)).mean() > 0.01
    assert np.abs(one("heart", 0.0) - one("heart", 2 * np.pi)).max() == 0.0
    shapes = [one(s, 0.0) for s in SHAPES]
    assert all(np.abs(shapes[i] - shapes[j]).sum() > 20 for i in range(3) for j in range(i))


def test_off_grid_values_and_shape_indices_render() -> None:
    a = render(shape=[2], scale=[0.61], orientation=[1.234], pos_x=[0.123], pos_y=[0.987])
    b = render(shape=["heart"], scale=[0.61], orientation=[1.234], pos_x=[0.123], pos_y=[0.987])
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(shape=["star"]), "shape"),
        (dict(shape=[3]), "shape"),
        (dict(scale=[1.5]), "scale"),
        (dict(pos_x=[-0.1]), "pos_x"),
        (dict(pos_y=[float("nan")]), "pos_y"),
        (dict(scale=[0.7, 0.8]), "scale"),
    ],
)
def test_bad_factor_values_name_the_factor(kwargs: dict[str, list[object]], field: str) -> None:
    args: dict[str, list[object]] = dict(
        shape=["square"], scale=[0.7], orientation=[0.0], pos_x=[0.5], pos_y=[0.5]
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        render(**args)  # type: ignore[arg-type]


def test_bad_indices_name_the_factor() -> None:
    idx = sample_factor_indices(3, seed=0)
    idx[1, 2] = 40
    with pytest.raises(ValueError, match="orientation"):
        render_indices(idx)
    with pytest.raises(ValueError, match="indices"):
        render_indices(np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match="unknown factor"):
        factor_values("colour")
