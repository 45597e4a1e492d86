"""Exact and property tests for the seeded sampling (core/seeding.py): numpy's SeedSequence
definition, bit for bit, whatever the split, batch size or seed width."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentserve.core.seeding import (
    MAX_SEED,
    sample_latents,
    sample_latents_reference,
    seed_latents,
)

seeds = st.integers(min_value=0, max_value=MAX_SEED)


def bits(x: npt.NDArray[Any]) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).tobytes()


def test_sample_split_matches_one_call() -> None:
    whole = sample_latents(1234, 16, 32)
    assert whole.shape == (16, 32) and whole.dtype == np.float32
    assert bits(whole[:8]) == bits(sample_latents(1234, 8, 32))
    assert bits(whole[8:]) == bits(sample_latents(1234, 8, 32, start=8))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n1=st.integers(0, 6), n2=st.integers(0, 6), dim=st.integers(1, 9))
def test_sample_any_split_is_identical(seed: int, n1: int, n2: int, dim: int) -> None:
    whole = sample_latents(seed, n1 + n2, dim)
    parts = np.concatenate([sample_latents(seed, n1, dim), sample_latents(seed, n2, dim, start=n1)])
    assert bits(whole) == bits(parts)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, start=st.integers(0, 2**40), n=st.integers(1, 4), dim=st.integers(1, 9))
def test_sample_matches_reference_formula(seed: int, start: int, n: int, dim: int) -> None:
    expected = np.stack(
        [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, start + i])))
            .standard_normal(dim)
            .astype(np.float32)
            for i in range(n)
        ]
    )
    assert bits(sample_latents(seed, n, dim, start=start)) == bits(expected)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63 - 1, MAX_SEED]), seeds),
    start=st.one_of(st.sampled_from([0, 2**32 - 3, 2**32, 2**63, 2**64 - 40]),
                    st.integers(0, 2**64 - 40)),
    n=st.one_of(st.integers(0, 4), st.integers(30, 40)),
    dim=st.integers(1, 70),
)
def test_sample_is_bit_identical_to_the_reference(seed: int, start: int, n: int,
                                                  dim: int) -> None:
    # n on both sides of the vectorised threshold; starts cross the 32-bit word boundary
    expected = sample_latents_reference(seed, n, dim, start=start)
    assert bits(sample_latents(seed, n, dim, start=start)) == bits(expected)


@pytest.mark.parametrize("seed", [0, 2**32 - 1, 2**63 - 1, MAX_SEED])
def test_sample_large_batches_are_bit_identical(seed: int) -> None:
    expected = sample_latents_reference(seed, 100, 16, start=2**32 - 50)
    assert bits(sample_latents(seed, 100, 16, start=2**32 - 50)) == bits(expected)


def test_sample_past_64_bit_items_falls_back_to_the_reference() -> None:
    start = 2**64 - 2  # items 2**64 and up need three entropy words
    assert bits(sample_latents(9, 5, 3, start=start)) == bits(
        sample_latents_reference(9, 5, 3, start=start))


def test_sample_golden_values() -> None:
    # Pins the bit stream clients reproduce locally; a numpy change to it must be noticed.
    z = sample_latents(42, 2, 4)
    expected = [
        [1050412001, 3213172275, 1061166482, 1064356057],
        [3200207643, 1065740444, 1055484192, 1039825220],
    ]
    assert z.view(np.uint32).tolist() == expected


def test_sample_seed_range_and_distinct_items() -> None:
    top = sample_latents(MAX_SEED, 2, 64)
    assert np.isfinite(top).all()
    assert not np.array_equal(top[0], top[1])
    assert not np.array_equal(top, sample_latents(0, 2, 64))
    assert sample_latents(5, 0, 3).shape == (0, 3)
    assert bits(sample_latents(np.uint64(MAX_SEED), 1, 4)) == bits(top[:1, :4])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": -1, "n": 1, "dim": 4}, "seed"),
        ({"seed": MAX_SEED + 1, "n": 1, "dim": 4}, "seed"),
        ({"seed": 1.5, "n": 1, "dim": 4}, "seed"),
        ({"seed": True, "n": 1, "dim": 4}, "seed"),
        ({"seed": 1, "n": -1, "dim": 4}, "n"),
        ({"seed": 1, "n": 1, "dim": 0}, "dim"),
        ({"seed": 1, "n": 1, "dim": 4, "start": -3}, "start"),
    ],
)
def test_sample_rejects_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sample_latents(**kwargs)


def test_seed_latents_are_item_0_of_each_seed() -> None:
    keys = [0, 7, 2**40 + 3, 2**64 - 1]
    z = seed_latents(keys, 5)
    assert z.dtype == np.float32 and z.shape == (4, 5)
    for row, seed in zip(z, keys, strict=True):
        np.testing.assert_array_equal(row, sample_latents_reference(seed, 1, 5)[0])
