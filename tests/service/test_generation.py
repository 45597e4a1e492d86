"""generation: latents from seeds, edits, directions and decode, on a real embedded backend."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.core import latent_ops, seeding
from latentserve.core.errors import InvalidArgument, NotFound
from latentserve.registry.bundle.files import Bundle
from latentserve.service import generation
from latentserve.service import requests as rq
from tests.fixtures.models import embedded_lease
from tests.fixtures.registry import TINY_W_DIM
from tests.fixtures.tiny import TinyWeights


async def test_sample_draws_the_seeds_items_and_truncates(
        registry_bundles: dict[str, Bundle]) -> None:
    async with embedded_lease(registry_bundles["tiny"]) as lease:
        z = await generation.sample(lease, 7, 3, None)
        np.testing.assert_array_equal(z, seeding.sample_latents(7, 3, 4))
        half = await generation.sample(lease, 7, 3, 0.5)
    np.testing.assert_allclose(half, latent_ops.truncate(z, 0.5, lease.bundle.truncation_center))


async def test_two_stage_latents_are_mapped_to_w_before_truncation(
        registry_bundles: dict[str, Bundle]) -> None:
    bundle = registry_bundles["tiny-w"]
    async with embedded_lease(bundle) as lease:
        w = await generation.sample(lease, 7, 2, None)
        truncated = await generation.sample(lease, 7, 2, 0.0001)
    assert w.shape == (2, TINY_W_DIM)
    np.testing.assert_allclose(truncated, np.broadcast_to(bundle.truncation_center, w.shape),
                               atol=1e-3)


async def test_seed_keyframes_are_item_zero_of_each_seed(
        registry_bundles: dict[str, Bundle]) -> None:
    async with embedded_lease(registry_bundles["tiny"]) as lease:
        keys = await generation.keyframes(lease, rq.KeyframeSeeds([5, 9], None))
        for row, seed in zip(keys, (5, 9), strict=True):
            np.testing.assert_array_equal(row, (await generation.sample(lease, seed, 1, None))[0])
        given = np.ones((2, 4), np.float32)
        assert await generation.keyframes(lease, given) is given


def test_edit_sweeps_each_base_along_the_direction() -> None:
    bases = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], np.float32)
    d = np.array([1, 0, 0, 0], np.float32)
    rows = generation.edit(bases, d, np.array([-1, 0, 2], np.float32), sigma=0.5)
    np.testing.assert_allclose(rows[:3, 0], [-0.5, 0, 1])
    np.testing.assert_array_equal(rows[4], bases[1])


def test_non_finite_values_name_the_field_that_caused_them() -> None:
    z = np.array([[1.0, np.inf]], np.float32)
    with pytest.raises(InvalidArgument) as exc:
        generation.finite(z, "strengths")
    assert exc.value.violations[0].field == "strengths"
    with pytest.raises(InvalidArgument, match="images computed from latents") as exc:
        generation.finite_output(z, "latents", "images")
    assert exc.value.violations[0].field == "latents"
    assert generation.finite(np.zeros((1, 2), np.float32), "x").shape == (1, 2)


def test_directions_by_name_vector_and_held_orthogonal(
        registry_bundles: dict[str, Bundle]) -> None:
    bundle = registry_bundles["tiny"]
    vector, sigma = generation.direction(bundle, rq.DirectionChoice("d0", None, []))
    assert sigma == pytest.approx(0.5)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, rtol=1e-5)
    raw = np.array([3, 4, 0, 0], np.float32)
    vector, sigma = generation.direction(bundle, rq.DirectionChoice("", raw, []))
    np.testing.assert_allclose(vector, [0.6, 0.8, 0, 0], rtol=1e-6)
    assert sigma == 1.0
    held, _ = generation.direction(bundle, rq.DirectionChoice("d0", None, ["pc0"]))
    assert abs(float(held @ bundle.directions["pc0"].vector)) < 1e-5


def test_unknown_or_self_referencing_directions_are_refused(
        registry_bundles: dict[str, Bundle]) -> None:
    bundle = registry_bundles["tiny"]
    with pytest.raises(NotFound, match="known: d0, pc0, sefa0"):
        generation.direction(bundle, rq.DirectionChoice("nope", None, []))
    with pytest.raises(NotFound, match=r"conditional_on\[0\]"):
        generation.direction(bundle, rq.DirectionChoice("d0", None, ["nope"]))
    with pytest.raises(InvalidArgument) as exc:
        generation.direction(bundle, rq.DirectionChoice("d0", None, ["pc0", "d0"]))
    assert exc.value.violations[0].field == "conditional_on[1]"


async def test_decode_runs_the_decoder_unless_only_latents_are_asked(
        registry_bundles: dict[str, Bundle]) -> None:
    z = seeding.sample_latents(3, 2, 4)
    async with embedded_lease(registry_bundles["tiny"]) as lease:
        images = await generation.decode(lease, z, None, "float32", 1 << 20)
        assert await generation.decode(lease, z, None, "latents", 1) is None
    assert images is not None
    expected = TinyWeights(latent_dim=4, shape=(1, 8, 8), num_classes=0, seed=0).decode(z)
    np.testing.assert_allclose(images, expected, atol=1e-5)


async def test_an_oversized_response_is_refused_before_the_backend(
        registry_bundles: dict[str, Bundle]) -> None:
    z = np.zeros((4, 4), np.float32)
    async with embedded_lease(registry_bundles["tiny"]) as lease:
        await lease.backend.unload()  # a backend call would now fail: the check comes first
        with pytest.raises(InvalidArgument) as exc:
            await generation.decode(lease, z, None, "float32", 1000)
    assert exc.value.violations[0].field == "output"
