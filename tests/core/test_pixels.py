"""The one float ↔ 8-bit pixel mapping (service uint8/PNG output and input, SDK to_pil)."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.core.pixels import from_uint8, to_uint8


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (-0.3, 2.7)])
def test_every_level_survives_a_round_trip(value_range: tuple[float, float]) -> None:
    levels = np.arange(256, dtype=np.uint8)
    values = from_uint8(levels, value_range)
    assert values.dtype == np.float32
    assert values[0] == np.float32(value_range[0])
    np.testing.assert_array_equal(to_uint8(values, value_range), levels)


def test_ends_clipping_and_non_finite_values() -> None:
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 3.0, np.nan, np.inf, -np.inf], np.float32)
    assert to_uint8(x, (-1.0, 1.0)).tolist() == [0, 0, 64, 128, 255, 255, 0, 255, 0]


def test_the_range_must_be_increasing() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        to_uint8(np.zeros(2, np.float32), (1.0, 1.0))
    with pytest.raises(ValueError, match="lo < hi"):
        from_uint8(np.zeros(2, np.uint8), (1.0, 0.0))
