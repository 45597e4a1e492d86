"""Argument checks shared by the latent math (`latent_ops`) and the seeding (`seeding`).

Each returns the value as a plain Python type or raises `ValueError` naming the argument::

    steps = check_int(steps, "steps", low=2)
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(value: int, name: str, *, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (no upper bound when `high` is None); bools refused."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value
