"""Run a LatentServer on its own event-loop thread (for embedding, tests and benchmarks).

Example::

    with BackgroundServer(Settings(port=0, metrics_port=0)) as bg:
        with Client(bg.address) as client:
            client.sample("sprites-vae", n=4, seed=0)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from latentserve.service.logs import configure_logging
from latentserve.service.server import LatentServer
from latentserve.service.settings import Settings

T = TypeVar("T")


class BackgroundServer:
    """A LatentServer whose event loop runs in a daemon thread."""

    def __init__(self, settings: Settings, *, wait_ready: bool = True, **server_kwargs: Any):
        self.settings = settings
        self._wait_ready = wait_ready
        self._kwargs = server_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.server: LatentServer | None = None

    @property
    def address(self) -> str:
        """host:port the gRPC server is bound to."""
        assert self.server is not None
        return f"{self.settings.host}:{self.server.port}"

    def start(self, timeout_s: float = 120.0) -> BackgroundServer:
        """Start the thread; return once serving (and, by default, the default model is ready)."""
        self._thread = threading.Thread(target=self._run, name="latentserve", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"server did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = 60.0) -> T:
        """Run a coroutine on the server's loop and return its result."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout_s)

    def stop(self, grace_s: float | None = None, timeout_s: float = 60.0) -> None:
        """Drain and stop the server, then join the thread."""
        if self._loop is not None and self._stop is not None and self.server is not None:
            self.call(self.server.stop(grace_s), timeout_s)
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._loop = None

    def _run(self) -> None:
        configure_logging(self.settings.log_level, self.settings.log_format)
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.server = LatentServer(self.settings, **self._kwargs)
            await self.server.start()
            if self._wait_ready:
                await self.server.manager.wait_ready()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
