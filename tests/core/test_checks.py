"""The shared argument checks (core/checks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.core.checks import check_int


def test_check_int_returns_a_plain_int() -> None:
    value = check_int(np.uint64(2**64 - 1), "seed", low=0, high=2**64 - 1)
    assert value == 2**64 - 1 and type(value) is int
    assert check_int(5, "n", low=5) == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [(True, "seed must be an integer"), (1.0, "seed must be an integer"),
     (-1, "seed must be between 0 and 9, got -1"), (10, "seed must be between 0 and 9")],
)
def test_check_int_names_the_argument(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_int(value, "seed", low=0, high=9)  # type: ignore[arg-type]


def test_check_int_without_upper_bound() -> None:
    with pytest.raises(ValueError, match="steps must be >= 2, got 1"):
        check_int(1, "steps", low=2)
