"""Factor-aligned latents, the image measures and the direction statistics, checked on exact
renders where the answers are known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from latentserve.core import latent_ops, seeding
from latentserve.core.arrays import F32, I64
from latentserve.generators.factor_latent import CIRCULAR_PERIOD, FactorLatent
from latentserve.generators.factor_training import gradient_difference
from latentserve.generators.shapes3d import (
    SHAPES as SCENE_SHAPES,
)
from latentserve.generators.shapes3d import (
    indices_to_values as scene_values,
)
from latentserve.generators.shapes3d import (
    render_indices as render_scenes,
)
from latentserve.generators.shapes3d import (
    sample_factor_indices as scene_indices,
)
from latentserve.generators.shapes3d_measures import (
    SCENE_MEASURES,
    measure_scenes,
    scene_shape_classifier,
)
from latentserve.generators.sprite_measures import (
    SPRITE_MEASURES,
    angle_error,
    measure_sprites,
    orientation_period,
    sprite_shape_classifier,
)
from latentserve.generators.sprites import (
    SHAPES,
    indices_to_values,
    render_indices,
    sample_factor_indices,
)
from latentserve.generators.sprites_vae import LAYOUT, grid_latents, real_renders, render_latents
from latentserve.registry.quality.scene_eval import quality_of, roundtrip_errors


def _circ_diff(a: np.ndarray, b: np.ndarray, period: float = 1.0) -> np.ndarray:
    d = np.mod(a - b, period)
    return np.minimum(d, period - d)


def test_latents_and_quantiles_invert_each_other() -> None:
    z = LAYOUT.sample(500, 3)
    u = LAYOUT.quantiles(z)
    assert u.min() >= 0.0 and u.max() < 1.0
    back = LAYOUT.quantiles(LAYOUT.latents(u))
    err = np.abs(back - u)
    err[:, 1] = _circ_diff(back[:, 1], u[:, 1])
    assert err.max() < 1e-9
    # the encoder's head targets map back to the same quantiles (circular: principal branch)
    z_head = LAYOUT.head_to_latent(torch.from_numpy(LAYOUT.head_targets(u))).numpy()
    assert np.abs(z_head[:, 1]).max() <= CIRCULAR_PERIOD / 2
    assert _circ_diff(LAYOUT.quantiles(z_head)[:, 1], u[:, 1]).max() < 1e-9


def test_a_circular_axis_is_periodic_and_a_linear_one_monotone() -> None:
    z = LAYOUT.sample(50, 4)
    turned = z.copy()
    turned[:, 1] += CIRCULAR_PERIOD
    f = LAYOUT.features(torch.from_numpy(z))
    assert torch.allclose(f, LAYOUT.features(torch.from_numpy(turned)), atol=1e-9)
    line = np.zeros((41, 4))
    line[:, 2] = np.linspace(-6, 6, 41)
    assert np.all(np.diff(LAYOUT.quantiles(line)[:, 2]) > 0)


def test_coupling_makes_the_normal_scores_correlated() -> None:
    s = LAYOUT.sample(20000, 5) @ LAYOUT.mixing().T
    assert abs(np.corrcoef(s[:, 0], s[:, 3])[0, 1] - 0.5) < 0.03
    assert np.allclose(s.std(axis=0), 1.0, atol=0.03)
    with pytest.raises(ValueError, match="ρ"):
        FactorLatent(("a", "b"), couplings={"a": ("b", 1.0)})


def test_sprite_measures_recover_the_factors_of_renders() -> None:
    idx = sample_factor_indices(900, 21, stream=5)
    values = indices_to_values(idx)
    m = measure_sprites(render_indices(idx), shape=idx[:, 0])
    err = np.degrees(angle_error(m["orientation"], values[:, 2], orientation_period(idx[:, 0])))
    for i, name in enumerate(SHAPES):
        limit = 6.0 if name == "heart" else 1.0  # a 5-px heart's asymmetry is a few pixels
        assert err[idx[:, 0] == i].mean() < limit, name
    assert np.abs(m["pos_x"] - values[:, 3]).max() < 0.06
    assert np.abs(m["pos_y"] - values[:, 4]).max() < 0.06
    scale = values[:, 1]
    for i in range(3):  # ink grows with scale² within a shape
        sel = idx[:, 0] == i
        assert np.corrcoef(m["ink"][sel], scale[sel] ** 2)[0, 1] > 0.99
    classifier = sprite_shape_classifier()
    assert classifier.accuracy >= 0.98
    assert np.mean(classifier.predict(render_indices(idx[:300])) == idx[:300, 0]) >= 0.98


def test_scene_measures_recover_the_factors_of_renders() -> None:
    idx = scene_indices(600, 21, stream=5)
    values = scene_values(idx)
    images = render_scenes(idx)
    m = measure_scenes(images)
    for i, name in enumerate(("floor_hue", "wall_hue", "object_hue")):
        assert _circ_diff(m[name], values[:, i]).max() < 0.01, name
    assert np.abs(m["orientation"] - values[:, 5]).max() < 0.5
    for i in range(len(SCENE_SHAPES)):
        sel = idx[:, 4] == i
        assert np.corrcoef(m["height"][sel], values[sel, 3])[0, 1] > 0.97
        same_pose = sel & (values[:, 5] == 0.0)
        assert np.corrcoef(m["size"][same_pose], values[same_pose, 3])[0, 1] > 0.97
    classifier = scene_shape_classifier()
    assert classifier.accuracy >= 0.98
    assert np.mean(classifier.predict(images[:300]) == idx[:300, 4]) >= 0.98


def _render_edit(directions: dict[str, np.ndarray]) -> object:
    """An exact generator: the renderer itself, edited with the service's latent math."""
    def edit(bases: F32, labels: I64, name: str, strengths: Sequence[float],
             conditional_on: Sequence[str]) -> F32:  # fmt: skip
        vector = directions[name]
        if conditional_on:
            vector = latent_ops.orthogonalize(vector, [directions[h] for h in conditional_on])
        rows = latent_ops.edit_latents(bases, vector, np.asarray(strengths), 1.0)
        images = render_latents(rows.astype(np.float64), np.repeat(labels, len(strengths)))
        return images.reshape(len(bases), len(strengths), *images.shape[1:])

    return edit


def test_direction_quality_of_an_exact_generator() -> None:
    """On the renderer itself every axis direction is monotone, the coupled scale direction
    drags pos_y along, and conditioning on pos_y removes that."""
    eye = np.eye(4)
    mix = LAYOUT.mixing()
    directions = {
        "scale": mix[0] / np.linalg.norm(mix[0]),  # what a regression on scale's score finds
        "orientation": eye[1],
        "pos_x": eye[2],
        "pos_y": eye[3],
    }
    seeds = list(range(1, 13))
    bases = np.concatenate([seeding.sample_latents(s, 1, 4) for s in seeds])
    labels = np.asarray(seeds, np.int64) % 3
    quality = quality_of(_render_edit(directions), bases, labels, SPRITE_MEASURES)  # type: ignore[arg-type]
    for q in quality.values():
        assert q.within >= 0.97 and q.pooled >= 0.93, q
    scale = quality["scale"]
    assert scale.leak_measure == "pos_y" and scale.leak_plain > 0.3
    assert scale.leak_conditional < 0.25 * scale.leak_plain


def test_roundtrip_errors_of_exact_renders_are_zero() -> None:
    images, labels, latents = real_renders(60, 0)
    again = render_latents(latents, labels)
    errors = roundtrip_errors(images, again, labels, SPRITE_MEASURES)
    assert errors["roundtrip_class_accuracy"] == 1.0
    assert errors["roundtrip_orientation_error_deg"] < 1.0
    assert errors["roundtrip_pos_x_error_pos"] < 0.01
    assert grid_latents(indices_to_values(sample_factor_indices(5, 0))).shape == (5, 4)


def test_scene_roundtrip_measures_are_circular_for_hues() -> None:
    idx = scene_indices(40, 3)
    images = render_scenes(idx)
    shifted = images[:, [1, 2, 0]]  # a hue turn by a third for every region
    errors = roundtrip_errors(images, shifted, idx[:, 4], SCENE_MEASURES)
    for name in ("floor_hue", "wall_hue", "object_hue"):
        assert abs(errors[f"roundtrip_{name}_error_deg"] - 120.0) < 2.0, name


def test_gradient_difference_charges_a_missing_edge_not_a_shift() -> None:
    square = torch.zeros(2, 3, 16, 16)
    square[:, :, 4:12, 4:12] = 1.0
    assert float(gradient_difference(square, square)) == 0.0
    assert float(gradient_difference(square + 0.2, square)) == pytest.approx(0.0, abs=1e-5)
    rounded = square.clone()
    rounded[:, :, 4, 4] = rounded[:, :, 4, 11] = 0.0  # two top corners cut off
    # each cut corner changes 4 neighbour steps by 1, in 3 channels: 2 · 4 · 3 per item
    assert float(gradient_difference(rounded, square)) == pytest.approx(24.0)
    blurred = torch.nn.functional.avg_pool2d(square, 3, stride=1, padding=1)
    assert float(gradient_difference(blurred, square)) > 0.0
