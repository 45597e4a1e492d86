"""The HTTP port on uvicorn, on the gRPC server's event loop (one process, one servicer).

Example (what `LatentServer.start` does when `http_port` is set)::

    http = HttpServer(app, settings, reuse_port=False)
    port = await http.start()      # binds (0 picks a free port), serves in a task
    await http.stop()              # stops accepting, lets open requests finish
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from latentserve.service.http.protocol import corked_protocol
from latentserve.service.logs import get_logger
from latentserve.service.settings import Settings

log = get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the LatentServer owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving one ASGI app on `settings.host:settings.http_port`."""

    def __init__(self, app: Any, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self._reuse_port = reuse_port
        tls: dict[str, Any] = {}
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            tls = {"ssl_certfile": str(settings.tls_cert_file),
                   "ssl_keyfile": str(settings.tls_key_file)}
            if settings.tls_client_ca_file is not None:
                tls |= {"ssl_ca_certs": str(settings.tls_client_ca_file),
                        "ssl_cert_reqs": ssl.CERT_REQUIRED}
        self.config = uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, server_header=False,
            http=corked_protocol(), h11_max_incomplete_event_size=64 * 1024,
            timeout_graceful_shutdown=max(1, round(settings.grace_period_s)), **tls)
        self._server = _EmbeddedUvicorn(self.config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def _bind(self) -> socket.socket:
        host = self.settings.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, self.settings.http_port or 0))
        sock.listen(2048)
        sock.setblocking(False)
        return sock

    async def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        """Stop accepting connections; open requests get the grace period to finish."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def build_http_server(settings: Settings, servicer: Any, oip: Any, metrics: Any, *,
                      reuse_port: bool = False, tracer: Any = None) -> HttpServer:
    """The HTTP port over the gRPC server's servicer and OIP core (what LatentServer runs)."""
    from latentserve.service.auth import TokenFile
    from latentserve.service.http.app import HttpApi
    from latentserve.service.http.docs import add_docs
    from latentserve.service.oip.rest import OipRest

    tokens = TokenFile(settings.auth_token_file) if settings.auth_token_file else None
    app = HttpApi(servicer, metrics, max_body_bytes=settings.max_message_bytes,
                  max_concurrent=settings.max_concurrent_rpcs,
                  cors_origins=settings.cors_origins(), tokens=tokens, tracer=tracer)
    rest = OipRest(oip, settings.max_message_bytes)
    for path, (label, handler) in rest.fixed_routes().items():
        app.add(path, label, handler)
    app.add_prefix("/v2/models/", rest.match)
    add_docs(app)
    return HttpServer(app, settings, reuse_port=reuse_port)
