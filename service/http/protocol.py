"""uvicorn's HTTP/1.1 protocol with one socket write per response instead of two.

uvicorn writes a response's head when the app sends `http.response.start` and its body on
`http.response.body`: two `send` calls, so two packets, and on loopback two wake-ups of the
reader. `CorkedTransport` gathers every write made within one event-loop iteration and hands
them to the socket together at the end of it (a call_soon flush), so a whole small response
leaves in one write. Order is kept; close() and write_eof() flush first.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CorkedTransport:
    """A transport whose writes in one loop iteration go out as one."""

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand everything written so far to the socket."""
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def corked_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (h11 where httptools is missing) on a CorkedTransport."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools not installed
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class CorkedProtocol(Base):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(CorkedTransport(transport))  # type: ignore[arg-type]

    return CorkedProtocol
