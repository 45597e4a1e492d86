"""Attack regressions, lifecycle side (issue 15 items 1, 2, 3): a slow or broken version never
freezes the event loop, never kills the alias watcher, and a rollback during a warm-up wins.

Synchronisation is by events only (a gated warm-up, a gated batch); nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentserve.core.arrays import Arrays
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.backends.base import Backend
from latentserve.service.backends.batching import AdaptiveBatcher
from latentserve.service.backends.embedded import EmbeddedBackend
from latentserve.service.backends.factory import BackendFactory
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import Settings
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import metric_value, service_settings
from tests.fixtures.tiny import build_tiny_bundle


# ------------------------------------------------------------------ item 1: stop off the loop
async def test_batcher_stop_does_not_block_the_loop() -> None:
    release, running = threading.Event(), threading.Event()

    def slow(inputs: Arrays) -> Arrays:  # a warm-up stuck in a long ONNX Loop
        running.set()
        release.wait(30)
        return {"y": inputs["x"]}

    batcher = AdaptiveBatcher(slow, max_batch_size=4, max_queue_items=16)
    batcher.start()
    submitted = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)}))
    assert await asyncio.to_thread(running.wait, 30)
    stopping = asyncio.ensure_future(batcher.stop())
    # While the worker thread is still inside the batch, the loop keeps running other work.
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 30)
    submitted.cancel()


# ------------------------------------------------------------------ server with a gated factory
class Gates:
    """Per-version behaviour of the test backend factory."""

    def __init__(self) -> None:
        self.broken: set[int] = set()
        self.gated: set[int] = set()
        self.warming = threading.Event()
        self.release = threading.Event()


def gated_factory(settings: Settings, gates: Gates) -> BackendFactory:
    class GatedBackend(EmbeddedBackend):
        def __init__(self, bundle: Bundle, version: int) -> None:
            super().__init__(bundle, settings)
            self.version = version

        async def load(self) -> None:
            if self.version in gates.broken:  # what onnxruntime raises for a custom-op domain
                raise RuntimeError("Fatal error: ai.onnx.contrib:Foo(-1) is not a registered "
                                   "function/op")
            await super().load()

        async def warm(self) -> None:
            if self.version in gates.gated:
                gates.warming.set()
                await asyncio.to_thread(gates.release.wait, 60)
            await super().warm()

    def make(bundle: Bundle, version: int) -> Backend:
        return GatedBackend(bundle, version)

    return make


@pytest.fixture
def versions(empty_registry_uri: str, tmp_path: Path) -> str:
    """Model "life": v1 (alias production), v2, v3 — all the same tiny generator."""
    bundle = build_tiny_bundle(tmp_path / "life", name="life")
    client = RegistryClient(empty_registry_uri)
    for v in (1, 2, 3):
        assert client.register(bundle.root, "life", force=True) == v
    client.set_alias("life", "production", 1)
    return empty_registry_uri


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def life_server(versions: str, tmp_path: Path, gates: Gates) -> Iterator[BackgroundServer]:
    settings = service_settings(versions, tmp_path / "cache", default_model="life")
    with BackgroundServer(settings, factory=gated_factory(settings, gates)) as bg:
        yield bg
    gates.release.set()


def served_version(bg: BackgroundServer) -> int:
    with grpc.insecure_channel(bg.address) as channel:
        out = pb_grpc.GeneratorServiceStub(channel).Sample(pb.SampleRequest(n=1), timeout=30)
    return int(out.model.version)


# ------------------------------------------------------------------ item 2: watcher survives
def test_refresh_survives_a_backend_exception(life_server: BackgroundServer, versions: str,
                                              gates: Gates) -> None:
    assert life_server.server is not None
    manager = life_server.server.manager
    gates.broken.add(2)
    RegistryClient(versions).set_alias("life", "production", 2)
    life_server.call(manager.refresh())  # raised RuntimeError out of the watcher before
    assert served_version(life_server) == 1
    assert metric_value(life_server, "latentserve_model_load_failures_total", model="life") == 1
    RegistryClient(versions).set_alias("life", "production", 3)
    life_server.call(manager.refresh())
    assert served_version(life_server) == 3


def test_watch_loop_survives_any_exception(versions: str, tmp_path: Path, gates: Gates,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = service_settings(versions, tmp_path / "cache", default_model="life",
                                registry_poll_s=0.01)
    calls, again = [], threading.Event()
    with BackgroundServer(settings, factory=gated_factory(settings, gates)) as bg:
        assert bg.server is not None

        async def flaky() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("unexpected")
            again.set()

        monkeypatch.setattr(bg.server.manager, "refresh", flaky)
        assert again.wait(30), "the watcher died after an exception"
        assert metric_value(bg, "latentserve_alias_watch_errors_total") >= 1


# ------------------------------------------------------------------ item 3: rollback wins
def test_rollback_during_a_slow_warm_up_is_honoured(life_server: BackgroundServer,
                                                    versions: str, gates: Gates) -> None:
    assert life_server.server is not None
    gates.gated.add(2)
    registry = RegistryClient(versions)
    registry.set_alias("life", "production", 2)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        refreshing = pool.submit(life_server.call, life_server.server.manager.refresh(), 120)
        assert gates.warming.wait(60)
        registry.set_alias("life", "production", 1)  # rolled back while v2 warms
        gates.release.set()
        refreshing.result(120)
    assert served_version(life_server) == 1
    assert (("life", 2) not in life_server.server.manager.loaded_versions())
