"""The error tree (core/errors.py): canonical status codes and field violations."""

from __future__ import annotations

import grpc
import pytest

from latentserve.core import errors
from latentserve.core.errors import FieldViolation, InvalidArgument, LatentServeError, StatusCode


@pytest.mark.parametrize("code", list(StatusCode))
def test_status_codes_are_the_canonical_grpc_values(code: StatusCode) -> None:
    assert grpc.StatusCode[code.name].value[0] == code.value


def test_every_error_is_a_latentserve_error_with_a_status() -> None:
    found = [obj for obj in vars(errors).values()
             if isinstance(obj, type) and issubclass(obj, LatentServeError)]
    assert len(found) > 1
    for cls in found:
        assert isinstance(cls.status, StatusCode)
        assert cls("why").message == "why"


def test_invalid_argument_puts_its_own_field_first() -> None:
    later = FieldViolation("steps", "must be >= 2")
    error = InvalidArgument("n must be >= 1", field="n", violations=[later])
    assert error.status is StatusCode.INVALID_ARGUMENT
    assert error.violations == [FieldViolation("n", "n must be >= 1"), later]
    assert InvalidArgument("bad").violations == []
