"""The one mapping from a failed call's status to an HTTP answer: status code and JSON body.

Every failure reaches HTTP as a `google.rpc.Status` (code, message, BadRequest field
violations), the same status the gRPC edge (`latentserve.service.grpc_errors`) sends; this
module turns it into::

    HTTP 400
    {"code": "invalid_argument", "status": 400, "message": "n must be ...",
     "field_violations": [{"field": "n", "description": "..."}]}

The `code` strings are the Connect protocol's, so Connect clients (e.g. @connectrpc/connect-web)
read the same errors; `field_violations` is the plain form of the BadRequest detail.
"""

from __future__ import annotations

import base64
from typing import Any

from google.rpc import code_pb2, error_details_pb2, status_pb2

from latentserve.core.errors import FieldViolation, LatentServeError
from latentserve.service.grpc_errors import rich_status

HTTP_STATUS: dict[int, int] = {
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 412,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
    code_pb2.UNAUTHENTICATED: 401,
}
"""google.rpc code → HTTP status (DESIGN §9; FAILED_PRECONDITION is 412)."""


def code_name(code: int) -> str:
    """The Connect protocol's name of a google.rpc code, e.g. "invalid_argument"."""
    name = code_pb2.Code.Name(code) if code in code_pb2.Code.values() else "UNKNOWN"
    return "canceled" if name == "CANCELLED" else name.lower()


class HttpError(Exception):
    """An HTTP answer that is an error: a google.rpc.Status and the HTTP status it maps to."""

    def __init__(self, status: status_pb2.Status, http_status: int | None = None) -> None:
        super().__init__(status.message)
        self.status = status
        self.http_status = http_status or HTTP_STATUS.get(status.code, 500)

    @classmethod
    def of(cls, exc: LatentServeError, http_status: int | None = None) -> HttpError:
        """The answer for an error of the one error tree."""
        return cls(rich_status(exc), http_status)

    @classmethod
    def invalid(cls, message: str, field: str, http_status: int | None = None) -> HttpError:
        """INVALID_ARGUMENT naming `field` (HTTP 400 unless `http_status` says otherwise)."""
        from latentserve.core.errors import InvalidArgument

        return cls.of(InvalidArgument(message, field=field), http_status)

    def violations(self) -> list[FieldViolation]:
        """The status's BadRequest field violations."""
        found = []
        for detail in self.status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                found += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        return found

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        body: dict[str, Any] = {
            "code": code_name(self.status.code),
            "status": self.http_status,
            "message": self.status.message,
            "error": self.status.message,  # the Open Inference Protocol's error field
        }
        violations = self.violations()
        if violations:
            body["field_violations"] = [
                {"field": v.field, "description": v.description} for v in violations
            ]
        if self.status.details:
            body["details"] = [  # Connect's form: unpadded base64 of the detail message
                {"type": d.TypeName(), "value": base64.b64encode(d.value).decode().rstrip("=")}
                for d in self.status.details
            ]
        return body
