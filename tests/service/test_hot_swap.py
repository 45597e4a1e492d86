"""Zero-downtime alias following: the service swaps versions under load, survives bad versions
and registry outages (embedded backend, real sqlite MLflow registry)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentserve.client import AsyncClient
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle, sqlite_path
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import backend_overrides, metric_value, service_settings
from tests.fixtures.tiny import TinyWeights, build_tiny_bundle

POLL_S = {"embedded": 1.0, "triton": 4.0}
"""Registry poll interval per backend (a Triton load takes seconds: stub start + warm-up)."""
SEEDS = {1: 0, 2: 1}
"""Version → tiny-generator seed: the versions decode the same latent differently."""


def expected(version: int, z: np.ndarray) -> np.ndarray:
    return TinyWeights(latent_dim=4, shape=(1, 8, 8), num_classes=0,
                       seed=SEEDS[version]).decode(z)


@pytest.fixture
def swap_registry(empty_registry_uri: str, tmp_path: Path) -> tuple[str, dict[int, Bundle]]:
    bundles = {v: build_tiny_bundle(tmp_path / f"v{v}", name="swap", seed=seed)
               for v, seed in SEEDS.items()}
    for v, bundle in bundles.items():
        assert register_bundle(empty_registry_uri, bundle.root, "swap") == v
    RegistryClient(empty_registry_uri).set_alias("swap", "production", 1)
    return empty_registry_uri, bundles


@pytest.fixture
def swap_server(swap_registry: tuple[str, dict[int, Bundle]], tmp_path: Path, backend: str,
                request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    uri, _ = swap_registry
    settings = service_settings(uri, tmp_path / "cache", default_model="swap",
                                registry_poll_s=POLL_S[backend], max_loaded_versions=2,
                                **backend_overrides(request, backend))
    with BackgroundServer(settings) as bg:
        yield bg


class Load:
    """8 async clients looping Sample/Interpolate/Edit; checks every response's consistency and
    records (sent, answered, version) per request."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sent = 0
        self.failures: list[BaseException] = []
        self.seen: list[tuple[float, float, int]] = []   # (sent, answered: monotonic; version)
        self.stop = asyncio.Event()
        self._answered = asyncio.Condition()

    async def worker(self, k: int) -> None:
        async with AsyncClient(self.address, timeout_s=30, retries=0) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                self.sent += 1
                sent = time.monotonic()
                try:
                    kind = (k + i) % 3
                    if kind == 0:
                        out = await client.sample("swap", n=8, seed=i)
                    elif kind == 1:
                        out = await client.interpolate("swap", seeds=[i, i + 1], steps=6)
                    else:
                        out = await client.edit("swap", seeds=[i], direction="d0",
                                                strengths=[-1, 0, 1])
                except Exception as exc:
                    self.failures.append(exc)
                    continue
                assert out.images is not None
                np.testing.assert_allclose(out.images, expected(out.model.version, out.latents),
                                           atol=1e-5)
                async with self._answered:
                    self.seen.append((sent, time.monotonic(), out.model.version))
                    self._answered.notify_all()

    async def run_until(self, done: asyncio.Future[None]) -> None:
        workers = [asyncio.ensure_future(self.worker(k)) for k in range(8)]
        try:
            await done
        finally:
            self.stop.set()
            await asyncio.gather(*workers)

    async def wait_for(self, version: int, *, sent_after: float, answers: int = 1) -> float:
        """When `answers` requests sent after `sent_after` have been answered by `version`
        (returns the first such answer's time); fails the test after a generous deadline."""

        def found() -> list[float]:
            return sorted(t for s, t, v in self.seen if s >= sent_after and v == version)

        async with self._answered:
            await asyncio.wait_for(self._answered.wait_for(lambda: len(found()) >= answers),
                                   timeout=90.0)
            return found()[0]


async def _move_alias(uri: str, version: int) -> float:
    await asyncio.to_thread(RegistryClient(uri).set_alias, "swap", "production", version)
    return time.monotonic()


@pytest.mark.timeout(240)
async def test_promote_and_roll_back_under_load_without_a_failed_request(
        swap_server: BackgroundServer, swap_registry: tuple[str, dict[int, Bundle]],
        backend: str) -> None:
    """The alias moves 1 → 2 → 1 under load: no request fails, every answer is consistent with
    the version that gave it, and once a version has answered a request, every request sent
    after that answer gets that version (until the next move)."""
    uri, _ = swap_registry
    load = Load(swap_server.address)
    marks: dict[str, float] = {}

    async def script() -> None:
        start = time.monotonic()
        await load.wait_for(1, sent_after=start, answers=50)          # steady state on v1
        marks["promote"] = await _move_alias(uri, 2)
        marks["on_v2"] = await load.wait_for(2, sent_after=marks["promote"])
        await load.wait_for(2, sent_after=marks["on_v2"], answers=50)
        marks["rollback"] = await _move_alias(uri, 1)
        marks["on_v1"] = await load.wait_for(1, sent_after=marks["rollback"])
        await load.wait_for(1, sent_after=marks["on_v1"], answers=50)

    await load.run_until(asyncio.ensure_future(script()))
    assert not load.failures, load.failures[:3]
    assert {v for _, _, v in load.seen} == {1, 2}
    # Once a version has answered, requests sent after that answer get it until the next move.
    assert all(v == 2 for s, _, v in load.seen if marks["on_v2"] < s < marks["rollback"])
    assert all(v == 1 for s, _, v in load.seen if s > marks["on_v1"])
    assert metric_value(swap_server, "latentserve_alias_swaps_total", model="swap") == 2


def _break_decoder(bundle_root: Path) -> None:
    (bundle_root / "decoder.onnx").write_bytes(b"not an onnx model")


async def test_alias_forced_onto_a_broken_version_keeps_the_old_one(
        swap_server: BackgroundServer, swap_registry: tuple[str, dict[int, Bundle]],
        tmp_path: Path) -> None:
    uri, _ = swap_registry
    broken = build_tiny_bundle(tmp_path / "v3", name="swap", seed=7)
    assert register_bundle(uri, broken.root, "swap") == 3
    # Corrupt the registered artifact itself (registration validates; the server must too).
    artifacts = RegistryClient(uri).download("swap", 3, tmp_path / "peek")
    stored = _artifact_dir(uri, artifacts)
    _break_decoder(stored)
    before = metric_value(swap_server, "latentserve_model_load_failures_total", model="swap")
    await asyncio.to_thread(RegistryClient(uri).set_alias, "swap", "production", 3)
    assert swap_server.server is not None
    await asyncio.to_thread(swap_server.call, swap_server.server.manager.refresh())
    after = metric_value(swap_server, "latentserve_model_load_failures_total", model="swap")
    assert after == before + 1
    async with AsyncClient(swap_server.address) as client:
        out = await client.sample("swap", n=2, seed=0)
    assert out.model.version == 1


def _artifact_dir(uri: str, downloaded: Path) -> Path:
    """The registry-side copy of a downloaded bundle (sqlite registries keep it by the db)."""
    db = sqlite_path(uri)
    assert db is not None
    decoder = (downloaded / "decoder.onnx").read_bytes()
    for path in (db.parent / "artifacts").rglob("decoder.onnx"):
        if path.read_bytes() == decoder:
            return path.parent
    raise AssertionError("registry-side artifact folder not found")


async def test_registry_outage_keeps_serving_and_recovers(
        swap_server: BackgroundServer, swap_registry: tuple[str, dict[int, Bundle]]) -> None:
    uri, _ = swap_registry
    db = sqlite_path(uri)
    assert db is not None and swap_server.server is not None
    manager = swap_server.server.manager
    hidden = db.with_suffix(".away")
    db.rename(hidden)
    try:
        await asyncio.to_thread(swap_server.call, manager.refresh())
        async with AsyncClient(swap_server.address, retries=0) as client:
            for seed in range(5):
                out = await client.sample("swap", n=4, seed=seed)
                assert out.model.version == 1
        assert metric_value(swap_server, "latentserve_registry_up") == 0
    finally:
        hidden.rename(db)
    await asyncio.to_thread(RegistryClient(uri).set_alias, "swap", "production", 2)
    await asyncio.to_thread(swap_server.call, manager.refresh())
    assert metric_value(swap_server, "latentserve_registry_up") == 1
    async with AsyncClient(swap_server.address) as client:
        assert (await client.sample("swap", n=1)).model.version == 2


def test_registry_unreachable_at_start_then_serving(
        swap_registry: tuple[str, dict[int, Bundle]], tmp_path: Path) -> None:
    uri, _ = swap_registry
    db = sqlite_path(uri)
    assert db is not None
    hidden = db.with_suffix(".away")
    db.rename(hidden)
    settings = service_settings(uri, tmp_path / "cache", default_model="swap")
    with BackgroundServer(settings, wait_ready=False) as bg, \
            grpc.insecure_channel(bg.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        hidden.rename(db)
        assert bg.server is not None
        bg.call(bg.server.manager.wait_ready(60), timeout_s=70)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
