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

from latentserve.service.auth import (
    FAILURE_WINDOW_S,
    MAX_TRACKED_PEERS,
    FailureLimiter,
    peer_host,
)
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.models import eventually
from tests.fixtures.service import metric_value, service_settings

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


# ------------------------------------------------------------------ item 16: failed auth
def _call(address: str, token: str) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.GeneratorServiceStub(channel).ListModels(
                pb.ListModelsRequest(), metadata=(("authorization", f"Bearer {token}"),),
                timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_failed_auth_is_rate_limited_per_peer(registry_uri: str, tmp_path: Path,
                                              token_file: Path) -> None:
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file,
                                auth_failures_per_minute=5)
    with BackgroundServer(settings) as bg:
        assert _call(bg.address, "good-token")[0] == grpc.StatusCode.OK
        for _ in range(5):
            code, details = _call(bg.address, "guess")
            assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong" in details
        for token in ("guess", "good-token"):  # even the right token: no guessing oracle
            code, details = _call(bg.address, token)
            assert code == grpc.StatusCode.UNAUTHENTICATED and "too many" in details
        assert metric_value(bg, "latentserve_auth_failures_total", reason="wrong") == 5
        assert metric_value(bg, "latentserve_auth_failures_total", reason="rate_limited") == 2


def test_failures_age_out_and_peers_are_bounded() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.record("10.0.0.1")
    assert limiter.blocked("10.0.0.1") and not limiter.blocked("10.0.0.2")
    now[0] = FAILURE_WINDOW_S + 1
    assert not limiter.blocked("10.0.0.1") and not limiter.active
    for i in range(MAX_TRACKED_PEERS + 50):
        limiter.record(f"h{i}")
    assert limiter.blocked(f"h{MAX_TRACKED_PEERS + 49}") is False  # one failure each
    assert len(limiter._failures) == MAX_TRACKED_PEERS
    assert peer_host("ipv4:127.0.0.1:5555") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5555") == "[::1]"


def test_deleting_the_token_file_revokes_every_token(registry_uri: str, tmp_path: Path,
                                                     token_file: Path) -> None:
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file)
    with BackgroundServer(settings) as bg:
        assert _call(bg.address, "good-token")[0] == grpc.StatusCode.OK
        token_file.unlink()  # was: the last tokens stayed valid for good
        assert _call(bg.address, "good-token")[0] == grpc.StatusCode.UNAUTHENTICATED
        token_file.write_text("good-token\n")
        assert _call(bg.address, "good-token")[0] == grpc.StatusCode.OK
