"""Attack regression (issue 15 item 8): stopping the server (what SIGTERM does) while many
requests are in flight loses none: each completes or gets UNAVAILABLE (which the SDK retries),
never CANCELLED unanswered."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc

from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import metric_value, service_settings


async def test_stop_under_load_answers_every_request(registry_uri: str, tmp_path: Path) -> None:
    # room for every item in the queue: this test is about shutdown, not admission control
    settings = service_settings(registry_uri, tmp_path / "cache", max_queue_items=50 * 256)
    bg = BackgroundServer(settings).start()
    codes: collections.Counter[str] = collections.Counter()
    try:
        async with grpc.aio.insecure_channel(bg.address) as channel:
            stub = pb_grpc.GeneratorServiceStub(channel)
            await stub.Sample(pb.SampleRequest(n=1), timeout=30)

            async def one(seed: int) -> None:
                try:
                    await stub.Sample(pb.SampleRequest(n=256, seed=seed,
                                                       output=pb.OUTPUT_FORMAT_PNG), timeout=60)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

            calls = [asyncio.ensure_future(one(seed)) for seed in range(50)]
            await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            stopping = asyncio.ensure_future(asyncio.to_thread(bg.stop, 30))
            await asyncio.gather(*calls)
            await stopping
    finally:
        bg.stop()
    assert sum(codes.values()) == 50
    assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
    assert codes["OK"] >= 1


def test_draining_server_answers_unavailable(registry_uri: str, tmp_path: Path) -> None:
    with BackgroundServer(service_settings(registry_uri, tmp_path / "cache")) as bg:
        assert bg.server is not None
        bg.server.admission.draining = True
        with grpc.insecure_channel(bg.address) as channel:
            stub = pb_grpc.GeneratorServiceStub(channel)
            try:
                stub.Sample(pb.SampleRequest(n=1), timeout=30)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
            else:
                raise AssertionError("a draining server started new work")
        assert metric_value(bg, "latentserve_requests_total", rpc="Sample",
                            code="UNAVAILABLE") == 1
        bg.server.admission.draining = False
