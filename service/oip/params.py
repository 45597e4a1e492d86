"""OIP request parameters (scalars: bool, int, float, string) read into typed values.

List-valued parameters are strings of comma-separated numbers ("-2,0,2"); a single number
is a list of one. Every mistake is INVALID_ARGUMENT naming `parameters.<name>`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from latentserve.core.errors import InvalidArgument

IGNORED = frozenset({"binary_data_output", "binary_data", "priority", "timeout", "headers",
                     "sequence_id", "sequence_start", "sequence_end",
                     "triton_enable_empty_final_response"})
"""Transport-level parameters OIP clients send on their own; they do not select anything."""
MAX_LIST = 4096


def _field(name: str) -> str:
    return f"parameters.{name}"


def check_known(params: Mapping[str, Any], known: set[str]) -> None:
    """Refuse parameters the model does not take (typos would otherwise pass silently)."""
    for name in params:
        if name not in known and name not in IGNORED:
            shown = name[:64]
            raise InvalidArgument(f"unknown parameter {shown!r}; this model takes "
                                  f"{', '.join(sorted(known)) or 'none'}", field=_field(shown))


def integer(params: Mapping[str, Any], name: str, default: int, *, low: int,
            high: int) -> int:
    """An integer parameter in [low, high]."""
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 40:
        value = int(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 63:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer between {low} and {high}",
                              field=_field(name))
    return value


def number(params: Mapping[str, Any], name: str) -> float | None:
    """A finite float parameter, or None when absent."""
    if name not in params:
        return None
    value = params[name]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number", field=_field(name))
    return float(value)


def text(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string parameter."""
    if name not in params:
        if required:
            raise InvalidArgument(f"parameter {name} is required", field=_field(name))
        return None
    value = params[name]
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidArgument(f"{name} must be a non-empty string of at most 256 characters",
                              field=_field(name))
    return value


def numbers(params: Mapping[str, Any], name: str, *, integers: bool = False,
            required: bool = False) -> list[float] | list[int] | None:
    """A list of numbers: "a,b,c" or a single number."""
    if name not in params:
        if required:
            raise InvalidArgument(f"parameter {name} is required", field=_field(name))
        return None
    value = params[name]
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be numbers", field=_field(name))
    items: list[Any] = value.split(",") if isinstance(value, str) else [value]
    if not items or len(items) > MAX_LIST:
        raise InvalidArgument(f"{name} must hold 1 to {MAX_LIST} values", field=_field(name))
    try:
        if integers:
            found_ints = [int(str(item).strip()) for item in items]
            if any(not 0 <= v < 2 ** 64 for v in found_ints):
                raise ValueError("out of range")
            return found_ints
        found = [float(str(item).strip()) for item in items]
    except ValueError:
        kind = "non-negative integers" if integers else "numbers"
        raise InvalidArgument(f"{name} must be comma-separated {kind}",
                              field=_field(name)) from None
    if not all(math.isfinite(v) for v in found):
        raise InvalidArgument(f"{name} must be finite numbers", field=_field(name))
    return found
