"""The SDK's exception root and its per-status subclasses, built from gRPC errors.

Every failed call raises a `LatentServeClientError` subclass chosen by the gRPC status;
bad-field errors carry the service's `google.rpc.BadRequest` field violations. Example::

    try:
        client.sample("sprites-vae", n=0)
    except InvalidArgumentError as err:
        err.field_violations[0].field        # 'n'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailing-metadata key of the serialized `google.rpc.Status` (with its details)."""


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, as the service reported it (e.g. `keyframes.latents.shape`)."""

    field: str
    description: str


class LatentServeClientError(Exception):
    """Root of every error a latentserve call raises; carries the gRPC status.

    Example::

        except LatentServeClientError as err:
            print(err.status_code.name, err.message)
    """

    def __init__(
        self,
        status_code: grpc.StatusCode,
        message: str,
        field_violations: Iterable[FieldViolation] = (),
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.field_violations = list(field_violations)
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status_code.name}: {self.message}"
        extra = [v for v in self.field_violations if v.description != self.message]
        if extra:
            text += " (" + "; ".join(f"{v.field}: {v.description}" for v in extra) + ")"
        return text


class InvalidArgumentError(LatentServeClientError):
    """A request field is malformed or out of range; see `field_violations`."""


class NotFoundError(LatentServeClientError):
    """Unknown model, version, alias or direction."""


class FailedPreconditionError(LatentServeClientError):
    """The operation does not apply to this model (no encoder, not conditional, ...)."""


class ResourceExhaustedError(LatentServeClientError):
    """The service is full (queue or concurrency bound, message size); retry later."""


class UnavailableError(LatentServeClientError):
    """The service or its backend is unreachable or not ready (raised after the retries)."""


class DeadlineExceededError(LatentServeClientError):
    """The call's deadline (`timeout_s`) passed before the service answered."""


class InternalError(LatentServeClientError):
    """The service failed unexpectedly; details are in its logs."""


_BY_STATUS: dict[grpc.StatusCode, type[LatentServeClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def _details_blob(trailing_metadata: Any) -> bytes | None:
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY:
            return value if isinstance(value, bytes) else str(value).encode("latin-1")
    return None


def field_violations_from_metadata(trailing_metadata: Any) -> list[FieldViolation]:
    """The BadRequest field violations packed in `grpc-status-details-bin`, if any.

    Unparseable details are ignored (the status code and message still stand).
    """
    blob = _details_blob(trailing_metadata)
    if blob is None:
        return []
    status = status_pb2.Status()
    try:
        status.ParseFromString(blob)
    except Exception:  # malformed details must not hide the real error
        return []
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return found


def error_from_status(
    code: grpc.StatusCode, message: str | None, trailing_metadata: Any = ()
) -> LatentServeClientError:
    """The SDK exception for a gRPC status (code, message, trailing metadata).

    Example::

        status = grpc_status.rpc_status.to_status(rich_status)
        raise error_from_status(status.code, status.details, status.trailing_metadata)
    """
    cls = _BY_STATUS.get(code, LatentServeClientError)
    return cls(code, message or "", field_violations_from_metadata(trailing_metadata))


def error_from_rpc_error(error: grpc.RpcError) -> LatentServeClientError:
    """The SDK exception for a failed call (`grpc.RpcError` from grpc or grpc.aio).

    Example::

        except grpc.RpcError as err:
            raise error_from_rpc_error(err) from None
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else ()
    return error_from_status(code, message, trailing)
