"""Circular factors: canonical representatives are whole turns away and nearest the centre."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from latentserve.core.circular import canonical, turns_off

TURNS = np.array([[0.0, 2.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])


@given(st.lists(st.floats(-50, 50), min_size=4, max_size=4),
       st.floats(-1, 1))
def test_canonical_is_whole_turns_away_and_nearest_the_centre(values: list[float],
                                                              centre: float) -> None:
    z = np.asarray([values], np.float32)
    out = canonical(z, TURNS, centre)
    moved = (out - z).astype(np.float64)
    k = moved @ TURNS.T / 4.0
    np.testing.assert_allclose(k, np.rint(k), atol=1e-3)
    assert (np.abs(out[0, :2] - centre) <= 1.0 + 1e-4).all()
    np.testing.assert_array_equal(out[0, 2:], z[0, 2:])
    assert not turns_off(out, TURNS, centre).any()


def test_no_circular_factors_leave_latents_alone() -> None:
    z = np.ones((3, 4), np.float32)
    assert canonical(z, np.zeros((0, 4)), 0.0) is z
