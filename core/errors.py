"""The one error tree of latentserve: every deliberate failure, with a plain status code.

Raise these anywhere below the RPC layer; the service maps `StatusCode` to its gRPC status
(and `google.rpc.BadRequest` field violations) in one place, `latentserve.service.grpc_errors`.
No gRPC import here, so the bundle format, the latent math and the training code can use the
same errors. Example::

    raise InvalidArgument("n must be between 1 and 1024, got 0", field="n")
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatusCode(enum.IntEnum):
    """The status of a failed operation; values are the canonical gRPC/google.rpc codes."""

    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path (e.g. `keyframes.latents.shape`) and what is wrong."""

    field: str
    description: str


class LatentServeError(Exception):
    """Root of every error latentserve reports to callers on purpose."""

    status: StatusCode = StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LatentServeError):
    """A request field is malformed or out of range (carries field violations)."""

    status = StatusCode.INVALID_ARGUMENT

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

    status = StatusCode.NOT_FOUND


class FailedPrecondition(LatentServeError):
    """The operation does not apply to this model (no encoder, not conditional, ...)."""

    status = StatusCode.FAILED_PRECONDITION


class ResourceExhausted(LatentServeError):
    """A queue or concurrency bound is full; retry later."""

    status = StatusCode.RESOURCE_EXHAUSTED


class Unavailable(LatentServeError):
    """A backend or the registry is down or not ready; clients retry with backoff."""

    status = StatusCode.UNAVAILABLE


class DeadlineExceeded(LatentServeError):
    """The request's deadline passed before the work finished."""

    status = StatusCode.DEADLINE_EXCEEDED


class BackendError(LatentServeError):
    """The numeric backend failed on this request; details stay in the logs."""

    status = StatusCode.INTERNAL
