"""Connection settings shared by Client and AsyncClient: channel options, auth, retry, deadline.

Calls are retried on UNAVAILABLE only, with exponential backoff (`backoff_s`, ×2 per try),
within one overall deadline (`timeout_s`). Example::

    config = ClientConfig("127.0.0.1:50051", timeout_s=10.0, retries=3)
    deadline = Deadline(config.timeout_s)
    deadline.remaining()        # seconds left for the next attempt
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import grpc

MIB = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * MIB
DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True)
class ClientConfig:
    """How a client connects and retries.

    `timeout_s` is the default deadline of one call (all retries included); `retries` the
    extra attempts after an UNAVAILABLE answer; `backoff_s` the first wait (doubling after
    each retry); `credentials` makes the channel TLS; `token` is sent as a bearer token.
    """

    address: str
    timeout_s: float = 30.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    retries: int = 3
    backoff_s: float = 0.1
    credentials: grpc.ChannelCredentials | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("address must be 'host:port', got an empty string")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be ≥ 1, got {self.max_message_bytes}")
        if self.retries < 0:
            raise ValueError(f"retries must be ≥ 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must be ≥ 0, got {self.backoff_s}")

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC channel options: message size limits both ways and a reconnect backoff that
        matches `backoff_s`, so a retry soon after a server restart can reach the new server."""
        reconnect_ms = max(100, int(self.backoff_s * 1000))
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
            ("grpc.min_reconnect_backoff_ms", reconnect_ms),
            ("grpc.max_reconnect_backoff_ms", max(reconnect_ms, 5000)),
            ("grpc.primary_user_agent", "latentserve-python"),
        ]

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Per-call metadata: the bearer token, when one is set."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        return float(self.backoff_s * 2**attempt)

    def call_timeout(self, timeout_s: float | None) -> float:
        """The deadline of one call: the per-call override or the client default."""
        if timeout_s is None:
            return self.timeout_s
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        return float(timeout_s)


class Deadline:
    """A point in time `seconds` from now, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (≤ 0 once passed)."""
        return self._end - time.monotonic()

    def allows_wait(self, seconds: float) -> bool:
        """Whether waiting `seconds` still leaves time for another attempt."""
        return self.remaining() - seconds > 0.0


def is_retryable(code: grpc.StatusCode) -> bool:
    """Only UNAVAILABLE is retried: every other status would fail the same way again."""
    return bool(code == grpc.StatusCode.UNAVAILABLE)
