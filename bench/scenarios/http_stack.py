"""How the HTTP port's stack was chosen: service CPU per small request, one GetModel-sized JSON
call, for connect-python's ASGI app vs a plain ASGI route (and a Starlette route), each alone
on uvicorn (httptools, asyncio loop, one process) under the same keep-alive load.

Not a registered scenario: connect-python is not a latentserve dependency. Run it in a venv of
its own (the result table is bench/results/http_stack.md)::

    python -m venv /tmp/stack && /tmp/stack/bin/pip install connect-python==0.9.0 \\
        protoc-gen-connect-python==0.9.0 uvicorn httptools starlette grpcio-tools
    /tmp/stack/bin/python bench/scenarios/http_stack.py --seconds 5 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BODY = b'{"model":{"name":"sprites-vae"}}'
PATH = "/latentserve.v1.GeneratorService/GetModel"


def generate(out: Path) -> None:
    """Python and connect-python stubs of generator.proto into `out`."""
    proto = out / "p" / "latentserve" / "v1"
    proto.mkdir(parents=True)
    shutil.copy(ROOT / "proto" / "latentserve" / "v1" / "generator.proto", proto)
    plugin = Path(sys.executable).parent / "protoc-gen-connect-python"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{out / 'p'}",
                    f"--python_out={out}", f"--plugin=protoc-gen-connect-python={plugin}",
                    f"--connect-python_out={out}", str(proto / "generator.proto")], check=True)


def app(kind: str) -> Any:
    """One ASGI app answering GetModel with a fixed ModelInfo."""
    from google.protobuf import json_format

    from latentserve.v1 import generator_pb2 as pb

    info = pb.ModelInfo(model=pb.ResolvedModel(name="sprites-vae", version=3, alias="production"),
                        latent_dim=10, prior="normal", output_shape=[1, 64, 64], output_max=1,
                        has_encoder=True, max_batch_size=64,
                        directions=[pb.DirectionInfo(name=f"d{i}", method="pca", unit="1 std",
                                                     sigma=1.5) for i in range(6)])
    if kind == "connect":
        from latentserve.v1.generator_connect import (
            GeneratorService,
            GeneratorServiceASGIApplication,
        )

        class Service(GeneratorService):  # type: ignore[misc]
            async def get_model(self, request: Any, ctx: Any) -> Any:
                return info

        return GeneratorServiceASGIApplication(Service())
    if kind == "starlette":
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def get_model(request: Any) -> Any:
            json_format.Parse(await request.body(), pb.GetModelRequest())
            return Response(json_format.MessageToJson(info, indent=None),
                            media_type="application/json")

        return Starlette(routes=[Route(PATH, get_model, methods=["POST"])])

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        json_format.Parse(body, pb.GetModelRequest())
        out = json_format.MessageToJson(info, indent=None).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return plain


async def load(port: int, pid: int, seconds: float, connections: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of keep-alive POSTs on `connections`."""
    request = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    done = [0]

    async def one(stop: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
            if length:
                await reader.readexactly(int(length[0].split(b":")[1]))
            else:  # chunked
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            done[0] += 1
        writer.close()

    start_cpu, start = cpu(), time.perf_counter()
    await asyncio.gather(*(one(start + seconds) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return done[0] / elapsed, 1e6 * (cpu() - start_cpu) / max(done[0], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvicorn

        kind, port = args.serve.split(":")
        uvicorn.run(app(kind), host="127.0.0.1", port=int(port), log_level="warning",
                    http="httptools", loop="asyncio", access_log=False)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        print("| stack | requests/s | service CPU µs / request |\n|---|---|---|")
        for _ in range(args.rounds):
            for kind in ("connect", "starlette", "plain"):
                port = 18777
                server = subprocess.Popen([sys.executable, __file__, "--serve", f"{kind}:{port}"],
                                          env=env)
                try:
                    for _ in range(100):
                        try:
                            asyncio.run(asyncio.wait_for(asyncio.open_connection(
                                "127.0.0.1", port), 1))
                            break
                        except OSError:
                            time.sleep(0.1)
                    rate, cpu_us = asyncio.run(load(port, server.pid, args.seconds,
                                                    args.connections))
                    print(f"| {kind} | {rate:.0f} | {cpu_us:.0f} |")
                finally:
                    server.terminate()
                    server.wait()


if __name__ == "__main__":
    main()
