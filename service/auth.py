"""Bearer-token authentication for the gRPC server: a token file that may hold several tokens,
re-read when it changes (rotation), compared in constant time; failures logged and counted.

The token file holds one token per line (blank lines and `#` comments ignored). During a
rotation it holds the old and the new token; remove the old one when every client has moved.
Deleting the file revokes every token (nothing is accepted until it is back); a change that
leaves it empty or unreadable keeps the previous tokens. A peer address that fails
authentication `auth_failures_per_minute` times within a minute is refused without its token
being checked (even a right one) until its failures age out. Example::

    tokens = TokenFile(Path("/etc/latentserve/tokens"))     # refuses an empty file
    interceptor = TokenAuthInterceptor(tokens, metrics, exempt=("grpc.health.v1.Health",))
    server = grpc.aio.server(interceptors=[interceptor])
"""

from __future__ import annotations

import collections
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from latentserve.service.limits import guarded
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics

log = get_logger(__name__)
_PREFIX = "Bearer "


class TokenFileError(ValueError):
    """The token file is missing, unreadable or holds no token."""


def read_tokens(path: Path) -> list[bytes]:
    """The tokens in `path` (one per line; blank lines and `#` comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"auth_token_file {path}: cannot be read ({exc})") from None
    tokens = [line.strip().encode() for line in text.splitlines()]
    tokens = [t for t in tokens if t and not t.startswith(b"#")]
    if not tokens:
        raise TokenFileError(f"auth_token_file {path}: holds no token; refusing to start "
                             "(an empty file would make an empty bearer token valid)")
    return tokens


class TokenFile:
    """The accepted tokens, re-read whenever the file changes (size, mtime or inode).

    A change that leaves the file unreadable or empty keeps the previous tokens (and logs an
    error) rather than opening or closing the service by accident.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tokens = read_tokens(path)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def tokens(self) -> list[bytes]:
        """The current tokens (re-read first if the file changed; none once it is deleted)."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            if stamp is None and not self.path.exists():
                self._tokens = []
                log.error("auth token file deleted: every token is revoked until it is back",
                          path=str(self.path))
                return self._tokens
            try:
                self._tokens = read_tokens(self.path)
                log.info("auth tokens reloaded", path=str(self.path), count=len(self._tokens))
            except TokenFileError as exc:
                log.error("auth token file changed but is unusable; keeping the previous "
                          "tokens", error=str(exc))
        return self._tokens

    def accepts(self, presented: bytes) -> bool:
        """Whether `presented` equals one of the tokens; every token is compared, each in
        constant time, so timing reveals neither the token nor which one matched."""
        found = False
        for token in self.tokens():
            found |= hmac.compare_digest(presented, token)
        return found


FAILURE_WINDOW_S = 60.0
"""The sliding window auth_failures_per_minute counts failures in."""
MAX_TRACKED_PEERS = 10_000
"""Most peer addresses whose failures are remembered (the oldest are forgotten first)."""


def peer_host(peer: str) -> str:
    """The address of a gRPC peer string without its port (`ipv4:1.2.3.4:5` → `1.2.3.4`)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0]
    return peer


class FailureLimiter:
    """Failed authentications per peer address in a sliding minute, bounded in memory."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    @property
    def active(self) -> bool:
        """Whether some peer is being limited now (or might be: failures are remembered)."""
        return self.per_minute > 0 and bool(self._failures)

    def blocked(self, host: str) -> bool:
        """Whether `host` used up its failures for the current window."""
        if self.per_minute <= 0:
            return False
        recent = self._recent(host)
        return recent is not None and len(recent) >= self.per_minute

    def record(self, host: str) -> None:
        """Count one failed authentication of `host`."""
        if self.per_minute <= 0:
            return
        recent = self._recent(host)
        if recent is None:
            recent = self._failures[host] = collections.deque(maxlen=self.per_minute)
            while len(self._failures) > MAX_TRACKED_PEERS:
                self._failures.popitem(last=False)
        self._failures.move_to_end(host)
        recent.append(self._clock())

    def _recent(self, host: str) -> collections.deque[float] | None:
        recent = self._failures.get(host)
        if recent is None:
            return None
        cutoff = self._clock() - FAILURE_WINDOW_S
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if not recent:
            del self._failures[host]
            return None
        return recent


_LIMITED_MESSAGE = "too many failed authentications from this address; retry later"


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requires `authorization: Bearer <token>` on every RPC outside the exempt services."""

    def __init__(self, tokens: TokenFile, metrics: ServiceMetrics,
                 exempt: Iterable[str] = (), *, failures_per_minute: int = 0) -> None:
        self._tokens = tokens
        self._metrics = metrics
        self._exempt = tuple(f"/{service}/" for service in exempt if service)
        self.limiter = FailureLimiter(failures_per_minute)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method or ""
        if method.startswith(self._exempt):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return handler
        reason = self._check(handler_call_details.invocation_metadata or ())
        if reason is None:
            # a right token from a limited peer is refused like a wrong one (no oracle)
            return guarded(handler, self._refuse_limited) if self.limiter.active else handler
        peer_method = method if len(method) <= 128 else method[:128] + "…"

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await self._refuse_limited(context)
            self.limiter.record(peer_host(context.peer()))
            self._metrics.auth_failures.labels(reason=reason).inc()
            log.warning("authentication failed", reason=reason, method=peer_method,
                        peer=context.peer())
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(deny)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(deny)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)

    async def _refuse_limited(self, context: grpc.aio.ServicerContext) -> None:
        """UNAUTHENTICATED, counted but not logged, when the caller's address is limited."""
        if self.limiter.blocked(peer_host(context.peer())):
            self._metrics.auth_failures.labels(reason="rate_limited").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _LIMITED_MESSAGE)

    def _check(self, metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
        """None when a presented token is accepted; else why not (missing|malformed|wrong)."""
        values = [v for k, v in metadata if k == "authorization"]
        if not values:
            return "missing"
        value = values[0]
        raw = value.encode() if isinstance(value, str) else value
        if len(values) != 1 or not raw.startswith(_PREFIX.encode()):
            return "malformed"
        presented = raw[len(_PREFIX):].strip()
        if not presented or not self._tokens.accepts(presented):
            return "wrong"
        return None
