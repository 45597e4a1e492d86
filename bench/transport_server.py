"""A bare gRPC server for the `transport` scenario: one unary method that answers every request
with the same bytes, nothing else — what a gRPC Python server costs per request on its own.

    python -m bench.transport_server --variant aio-uvloop --port 50123 --reply-bytes 16384

Variants: `aio` (grpc.aio on asyncio), `aio-uvloop` (grpc.aio on uvloop), `sync`
(grpc's thread-pool server, `--threads` workers) and `sync-loop` (the thread-pool server whose
handler awaits a coroutine on one event-loop thread, `run_coroutine_threadsafe`: what the
service, whose batching, leases and hot swap live on one loop, would pay on that server). The
method is `/bench.Echo/Call`; requests and replies are raw bytes (no protobuf), so only the
transport and the server loop are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from concurrent import futures
from typing import Any

import grpc

METHOD = "/bench.Echo/Call"
SERVICE, NAME = "bench.Echo", "Call"


def _identity(data: bytes) -> bytes:
    return data


def _loop_thread() -> asyncio.AbstractEventLoop:
    """An event loop running forever in a daemon thread."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="loop", daemon=True).start()
    return loop


def _handlers(reply: bytes, *, aio: bool,
              loop: asyncio.AbstractEventLoop | None = None) -> grpc.GenericRpcHandler:
    if aio:
        async def call_async(request: bytes, context: Any) -> bytes:
            return reply

        handler = grpc.unary_unary_rpc_method_handler(
            call_async, request_deserializer=_identity, response_serializer=_identity)
        return grpc.method_handlers_generic_handler(SERVICE, {NAME: handler})

    async def answer() -> bytes:
        return reply

    def call(request: bytes, context: Any) -> bytes:
        if loop is None:
            return reply
        return asyncio.run_coroutine_threadsafe(answer(), loop).result()

    handler = grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=_identity, response_serializer=_identity)
    return grpc.method_handlers_generic_handler(SERVICE, {NAME: handler})


async def _serve_aio(port: int, reply: bytes) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handlers(reply, aio=True),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(0)


def _serve_sync(port: int, reply: bytes, threads: int, *, on_loop: bool = False) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(threads))
    loop = _loop_thread() if on_loop else None
    server.add_generic_rpc_handlers((_handlers(reply, aio=False, loop=loop),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["aio", "aio-uvloop", "sync", "sync-loop"],
                        required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply-bytes", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    reply = bytes(args.reply_bytes)
    if args.variant in ("sync", "sync-loop"):
        _serve_sync(args.port, reply, args.threads, on_loop=args.variant == "sync-loop")
    elif args.variant == "aio-uvloop":
        import uvloop

        uvloop.run(_serve_aio(args.port, reply))
    else:
        asyncio.run(_serve_aio(args.port, reply))


if __name__ == "__main__":
    main()
