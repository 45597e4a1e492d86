"""The service's exception root and its subclasses, each carrying its gRPC status.

Raise these anywhere below the RPC layer; `latentserve.service.grpc_errors` maps them to a
status (and `google.rpc.BadRequest` field violations) in one place. Example::

    raise InvalidArgument("n must be between 1 and 1024, got 0", field="n")
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path (e.g. `keyframes.latents.shape`) and what is wrong."""

    field: str
    description: str


class LatentServeError(Exception):
    """Root of every error the service reports to callers on purpose."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LatentServeError):
    """A request field is malformed or out of range (carries field violations)."""

    status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(message)
        found = list(violations or [])
        if field is not None:
            found.insert(0, FieldViolation(field, message))
        self.violations = found


class NotFound(LatentServeError):
    """An unknown model, version, alias or direction."""

    status = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(LatentServeError):
    """The operation does not apply to this model (no encoder, not conditional, ...)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(LatentServeError):
    """A queue or concurrency bound is full; retry later."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(LatentServeError):
    """A backend or the registry is down or not ready; clients retry with backoff."""

    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(LatentServeError):
    """The request's deadline passed before the work finished."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED


class BackendError(LatentServeError):
    """The numeric backend failed on this request; details stay in the logs."""

    status = grpc.StatusCode.INTERNAL
