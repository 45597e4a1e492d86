"""gRPC statuses become typed SDK errors, with BadRequest field violations parsed."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from latentserve.client import (
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    LatentServeClientError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from latentserve.client.errors import error_from_rpc_error, error_from_status


def _bad_request(message: str, *violations: tuple[str, str]) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    return rpc_status.to_status(status)


def test_invalid_argument_carries_field_violations() -> None:
    status = _bad_request(
        "n must be between 1 and 1024, got 0",
        ("n", "n must be between 1 and 1024, got 0"),
        ("class_labels", "class_labels must be in [0, 9], got [12]"),
    )
    err = error_from_status(status.code, status.details, status.trailing_metadata)
    assert type(err) is InvalidArgumentError
    assert err.status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.message == "n must be between 1 and 1024, got 0"
    assert err.field_violations == [
        FieldViolation("n", "n must be between 1 and 1024, got 0"),
        FieldViolation("class_labels", "class_labels must be in [0, 9], got [12]"),
    ]
    # one line: status, message, and the violations that add something
    assert str(err) == (
        "INVALID_ARGUMENT: n must be between 1 and 1024, got 0 "
        "(class_labels: class_labels must be in [0, 9], got [12])"
    )


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, InternalError),
        (grpc.StatusCode.UNAUTHENTICATED, LatentServeClientError),
        (grpc.StatusCode.UNKNOWN, LatentServeClientError),
    ],
)
def test_status_table(code: grpc.StatusCode, cls: type[LatentServeClientError]) -> None:
    err = error_from_status(code, "boom")
    assert type(err) is cls and isinstance(err, LatentServeClientError)
    assert (err.status_code, err.message, err.field_violations) == (code, "boom", [])
    assert str(err) == f"{code.name}: boom"


def test_from_aio_rpc_error_with_rich_status() -> None:
    status = _bad_request("bad latents", ("latents.shape", "latents.shape must be [*, 10]"))
    aio_error = grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )
    err = error_from_rpc_error(aio_error)
    assert isinstance(err, InvalidArgumentError)
    assert err.field_violations == [
        FieldViolation("latents.shape", "latents.shape must be [*, 10]")
    ]


def test_malformed_or_foreign_details_are_ignored() -> None:
    garbage = (("grpc-status-details-bin", b"\xff\x00not a status"),)
    err = error_from_status(grpc.StatusCode.NOT_FOUND, "no model x", garbage)
    assert isinstance(err, NotFoundError) and err.field_violations == []

    other = any_pb2.Any()
    other.Pack(error_details_pb2.RetryInfo())
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="later", details=[other])
    grpc_status = rpc_status.to_status(status)
    err = error_from_status(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
    assert isinstance(err, UnavailableError) and err.field_violations == []


def test_missing_message_becomes_empty_string() -> None:
    err = error_from_status(grpc.StatusCode.INTERNAL, None, None)
    assert err.message == "" and str(err) == "INTERNAL: "
