"""Attack regressions, limits (second pass, items 2 and 16): calls that need no token cannot
lock out the API or the health check, and failed authentication is rate limited per peer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.models import eventually
from tests.fixtures.service import service_settings

TOKEN = (("authorization", "Bearer good-token"),)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text("good-token\n")
    return path


@pytest.fixture
def limited_server(registry_uri: str, tmp_path: Path,
                   token_file: Path) -> Iterator[BackgroundServer]:
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file,
                                max_concurrent_rpcs=8, max_unauthenticated_streams=4)
    with BackgroundServer(settings) as bg:
        yield bg


# ------------------------------------------------------------------ item 2: idle streams
def test_idle_health_watches_lock_nobody_out(limited_server: BackgroundServer) -> None:
    # Twelve idle Watch streams (no token needed) filled max_concurrent_rpcs=8: every
    # authenticated call and the health check itself then got RESOURCE_EXHAUSTED.
    with contextlib.ExitStack() as stack:
        channel = stack.enter_context(grpc.insecure_channel(limited_server.address))
        health = health_pb2_grpc.HealthStub(channel)
        opened, refused = 0, 0
        for _ in range(12):
            stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            stack.callback(stream.cancel)
            try:
                next(stream)  # the current status: the stream is open and stays idle
                opened += 1
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "need no token" in (error.details() or "")
                refused += 1
        assert (opened, refused) == (4, 8)
        check = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        api = pb_grpc.GeneratorServiceStub(channel)
        for seed in range(10):  # more calls than max_concurrent_rpcs, one after another
            out = api.Sample(pb.SampleRequest(n=1, seed=seed), metadata=TOKEN, timeout=30)
            assert out.model.name == "tiny"


def test_closed_streams_free_their_place(limited_server: BackgroundServer) -> None:
    assert limited_server.server is not None
    limits = limited_server.server.limits
    with grpc.insecure_channel(limited_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            streams = [health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
                       for _ in range(4)]
            for stream in streams:
                next(stream)
            for stream in streams:
                stream.cancel()
            limited_server.call(eventually(lambda: limits.open_streams == 0))
