"""Connection and retry, shared by Client and AsyncClient: settings, the lazy channel, `Retry`.

Calls are retried on UNAVAILABLE only, with exponential backoff (`backoff_s`, ×2 per try),
within one overall deadline (`timeout_s`); a stream is reopened only before its first chunk.
Example::

    config = ClientConfig("127.0.0.1:50051", timeout_s=10.0, retries=3)
    retry = Retry(config, config.timeout_s)
    retry.timeout()             # seconds left for the next attempt
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc

from latentserve.v1 import generator_pb2_grpc as pb_grpc

from .errors import error_from_rpc_error

MIB = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * MIB
DEFAULT_ADDRESS = "127.0.0.1:50051"


def default_address() -> str:
    """Where a client goes when given no address: `LATENTSERVE_ADDRESS` (host:port), else
    127.0.0.1 on `LATENTSERVE_PORT` (the port `latentserve serve` listens on), else
    DEFAULT_ADDRESS — the same rule for the SDK and the CLI."""
    address = os.environ.get("LATENTSERVE_ADDRESS", "").strip()
    if address:
        return address
    port = os.environ.get("LATENTSERVE_PORT", "").strip()
    return f"127.0.0.1:{port}" if port else DEFAULT_ADDRESS


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


class Retry:
    """The retry policy of one call: every attempt gets what is left of the deadline; after
    a failure, `wait` gives the backoff or raises the SDK error. Example::

        try:
            return stub.Sample(request, timeout=retry.timeout(), metadata=config.metadata())
        except grpc.RpcError as err:
            time.sleep(retry.wait(err))  # then try again
    """

    def __init__(self, config: ClientConfig, timeout_s: float) -> None:
        self._config = config
        self._end = time.monotonic() + timeout_s
        self._attempt = 0
        self.started = False
        """Set by a stream once a chunk has arrived: from then on an error ends it."""

    def timeout(self) -> float:
        """Seconds the next attempt may take: what is left of the deadline."""
        return max(self._end - time.monotonic(), 0.001)

    def wait(self, error: grpc.RpcError) -> float:
        """Seconds to wait before the next attempt after `error`; raises it as the SDK error
        unless it is UNAVAILABLE, no chunk has arrived, a retry is left and the deadline
        outlasts the wait."""
        failure = error_from_rpc_error(error)
        seconds = self._config.backoff(self._attempt)
        if (
            failure.status_code != grpc.StatusCode.UNAVAILABLE
            or self.started
            or self._attempt >= self._config.retries
            or self._end - time.monotonic() - seconds <= 0.0
        ):
            raise failure from None
        self._attempt += 1
        return seconds


class Connection:
    """What Client and AsyncClient share: the settings and the channel made on first use.

    A subclass says whether its channel is grpc.aio (`aio`) and closes it.
    """

    aio: ClassVar[bool] = False

    def __init__(self, address: str | None = None, *, timeout_s: float = 30.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, retries: int = 3,
                 backoff_s: float = 0.1, credentials: grpc.ChannelCredentials | None = None,
                 token: str | None = None) -> None:
        self._config = ClientConfig(default_address() if address is None else address,
                                    timeout_s, max_message_bytes, retries, backoff_s,
                                    credentials, token)
        self._channel: Any = None
        self._stub_obj: Any = None
        self._closed = False
        self._lock = threading.Lock()  # Client's calls may come from many threads

    @property
    def address(self) -> str:
        """The `host:port` this client talks to."""
        return self._config.address

    def _stub(self) -> Any:
        """The stub (grpc or grpc.aio), making the channel on first use; RuntimeError once
        the client is closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"client for {self.address} is closed")
            if self._stub_obj is None:
                self._channel = self._open_channel()
                self._stub_obj = pb_grpc.GeneratorServiceStub(self._channel)
            return self._stub_obj

    def _open_channel(self) -> Any:
        cfg, channels = self._config, grpc.aio if self.aio else grpc
        if cfg.credentials is None:
            return channels.insecure_channel(cfg.address, options=cfg.channel_options())
        return channels.secure_channel(cfg.address, cfg.credentials, options=cfg.channel_options())

    def _detach(self) -> Any:
        """Mark the client closed; the channel to close, if one was opened."""
        with self._lock:
            self._closed = True
            channel, self._channel, self._stub_obj = self._channel, None, None
        return channel
