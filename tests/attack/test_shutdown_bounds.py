"""Attack regressions, shutdown (second pass, items 8 and 17): a dead OTLP collector cannot hold
a shutdown past the grace period, and a drained server stops without waiting out the grace
period while every request is answered.

Bounds are checked by what the code waits on (timeouts passed down, events), not by timing.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.tracing import Tracing
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import service_settings


# ------------------------------------------------------------------ item 8: dead collector
def test_otlp_exports_are_bounded_by_the_setting(registry_uri: str, tmp_path: Path) -> None:
    settings = service_settings(registry_uri, tmp_path, otlp_endpoint="http://127.0.0.1:9",
                                otlp_timeout_s=0.5)
    tracing = Tracing.from_settings(settings)
    assert tracing is not None
    try:
        exporter = tracing._exporter
        assert exporter is not None
        assert exporter._timeout == 0.5  # type: ignore[attr-defined]  # was the 10 s default
        assert tracing.shutdown_timeout_s == 0.5
    finally:
        tracing.shutdown()


def test_a_flush_that_never_ends_does_not_hold_shutdown() -> None:
    release = threading.Event()
    provider = TracerProvider()
    stuck = threading.Event()

    def hung_shutdown() -> None:  # a collector that accepts and never answers
        stuck.set()
        release.wait(120)

    provider.shutdown = hung_shutdown  # type: ignore[method-assign]
    tracing = Tracing(provider, shutdown_timeout_s=0.2)
    try:
        assert tracing.shutdown() is False  # gave up on the flush and returned
        assert stuck.is_set()
    finally:
        release.set()


# ------------------------------------------------------------------ item 17: steady traffic
def test_steady_traffic_does_not_hold_the_stop(registry_uri: str, tmp_path: Path) -> None:
    # Each refusal while draining counted as a new start, so the drain never saw a quiet
    # moment and every stop under traffic took the whole grace period.
    settings = service_settings(registry_uri, tmp_path / "cache")
    bg = BackgroundServer(settings).start()
    codes: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def traffic() -> None:
        with grpc.insecure_channel(bg.address) as channel:
            stub = pb_grpc.GeneratorServiceStub(channel)
            seed = 0
            while not done.is_set():
                seed += 1
                try:
                    stub.Sample(pb.SampleRequest(n=4, seed=seed), timeout=30)
                    codes["OK"] += 1
                except grpc.RpcError as error:
                    codes[error.code().name] += 1

    senders = [threading.Thread(target=traffic) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        while sum(codes.values()) < 20:
            done.wait(0.05)
        assert bg.server is not None
        # a grace period far beyond the test's patience: only a drain that ends on its own
        # returns in time
        bg.call(bg.server.stop(3600.0), timeout_s=120)
    finally:
        done.set()
        for sender in senders:
            sender.join(60)
        bg.stop(grace_s=0)
    assert codes["OK"] >= 20
    assert set(codes) <= {"OK", "UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"}, codes
    # Known residue: a call gRPC core has accepted on a connection but the aio server has not
    # yet picked up when gRPC stops is cancelled by the core (or, seen once on a loaded
    # machine, left to its deadline); at most the one call each sender has in flight at that
    # instant, never an admitted one.
    assert codes["CANCELLED"] + codes["DEADLINE_EXCEEDED"] <= len(senders), codes
