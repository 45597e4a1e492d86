"""Fixtures: a real latentserve server (embedded backend) on a free port over a real registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import Settings
from latentserve.v1 import generator_pb2_grpc as pb_grpc


def service_settings(registry_uri: str, cache_dir: Path, **overrides: object) -> Settings:
    """Settings for a test server: free ports, tiny default model, slow polling."""
    values: dict[str, object] = {
        "port": 0,
        "metrics_port": 0,
        "registry_uri": registry_uri,
        "default_model": "tiny",
        "cache_dir": cache_dir,
        "registry_poll_s": 3600.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def backend_overrides(request: pytest.FixtureRequest, backend: str) -> dict[str, object]:
    """Settings that select `backend`; for triton, those of the session's tritonserver."""
    if backend == "embedded":
        return {"backend": "embedded"}
    triton = request.getfixturevalue("triton_settings")
    return {k: getattr(triton, k) for k in
            ("backend", "triton_url", "triton_flavor", "triton_model_control",
             "triton_max_queue_delay_us")}


@pytest.fixture(scope="session", params=["embedded", "triton"])
def backend(request: pytest.FixtureRequest) -> str:
    """The numeric backend the server fixtures use (every RPC test runs on both)."""
    return str(request.param)


@pytest.fixture(scope="session")
def server(registry_uri: str, tmp_path_factory: pytest.TempPathFactory, backend: str,
           request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    """A server for the session (models tiny, tiny-cond, tiny-noenc, tiny-w) on `backend`."""
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"),
                                **backend_overrides(request, backend))
    with BackgroundServer(settings) as bg:
        yield bg


@pytest.fixture(scope="session")
def stub(server: BackgroundServer) -> Iterator[pb_grpc.GeneratorServiceStub]:
    """A raw gRPC stub on the session server (64 MiB messages)."""
    limit = 64 * 1024 * 1024
    with grpc.insecure_channel(
        server.address,
        options=[("grpc.max_receive_message_length", limit),
                 ("grpc.max_send_message_length", limit)],
    ) as channel:
        yield pb_grpc.GeneratorServiceStub(channel)


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) pairs from a status's google.rpc.BadRequest details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found = []
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


def metric_value(server: BackgroundServer, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels` (0 when absent)."""
    assert server.server is not None
    total = 0.0
    for family in server.server.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
