"""Two service replicas (real `latentserve serve` processes) sharing one tritonserver in explicit
model control: the alias moves v1 → v2 → v1 under continuous load on both, replica a follows it
by polling, replica b only later (on SIGHUP), no request fails, and a version leaves Triton only
once neither serves it. Synchronised on responses' versions, log events and model readiness.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from latentserve.client import AsyncClient
from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle
from latentserve.registry.triton.export import triton_model_name
from latentserve.service.devtools.triton_local import TritonProcess
from tests.fixtures.process import ServeProcess
from tests.fixtures.tiny import TinyWeights, build_tiny_bundle

pytestmark = pytest.mark.timeout(600)
SEEDS = {1: 0, 2: 1}
"""Version → tiny-generator seed: the versions decode the same latent differently."""
POLL_S = {"a": 1.0, "b": 3600.0}
"""Each replica's registry poll: a follows the alias by itself, b only when sent SIGHUP."""
WAIT_S = 180.0


def expected(version: int, z: np.ndarray) -> np.ndarray:
    return TinyWeights(latent_dim=4, shape=(1, 8, 8), num_classes=0,
                       seed=SEEDS[version]).decode(z)


def ready_models(url: str) -> set[str]:
    """The models of either version that Triton reports ready. (Models loaded with a config and
    files in the load request are not in Triton's repository index: each is asked for.)"""
    names = [triton_model_name("shared", v, c) for v in SEEDS for c in ("decoder", "encoder")]
    with grpcclient.InferenceServerClient(url) as client:
        return {name for name in names if client.is_model_ready(name)}


def decoder(version: int) -> str:
    return triton_model_name("shared", version, "decoder")


def encoder(version: int) -> str:
    return triton_model_name("shared", version, "encoder")


@pytest.fixture
def shared_registry(empty_registry_uri: str, tmp_path: Path) -> str:
    for version, seed in SEEDS.items():
        bundle = build_tiny_bundle(tmp_path / f"v{version}", name="shared", seed=seed)
        assert register_bundle(empty_registry_uri, bundle.root, "shared") == version
    RegistryClient(empty_registry_uri).set_alias("shared", "production", 1)
    return empty_registry_uri


@pytest.fixture
def replicas(shared_registry: str, fresh_triton: TritonProcess,
             tmp_path: Path) -> Iterator[dict[str, ServeProcess]]:
    started: dict[str, ServeProcess] = {}
    try:
        for name, poll in POLL_S.items():  # one after the other: b finds v1 loaded by a
            started[name] = ServeProcess(
                shared_registry, tmp_path / f"cache-{name}", default_model="shared",
                backend="triton", triton_url=fresh_triton.grpc_url, triton_flavor="python",
                triton_model_control="explicit", triton_max_queue_delay_us=2000,
                default_deadline_s=30, registry_poll_s=poll, triton_lease_ttl_s=30,
                replica_id=f"replica-{name}",
            ).wait_serving(WAIT_S)
        yield started
    finally:
        for served in started.values():
            served.close()


class Traffic:
    """Clients looping Sample on every replica; records (replica, version) per response."""

    def __init__(self, replicas: dict[str, ServeProcess]) -> None:
        self.replicas = replicas
        self.failures: list[tuple[str, BaseException]] = []
        self.latest: dict[str, int] = {}
        self.count = 0
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def client(self, replica: str, k: int) -> None:
        async with AsyncClient(self.replicas[replica].address, timeout_s=60,
                               retries=0) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    out = await client.sample("shared", n=1 + (i % 3), seed=1000 * k + i)
                except Exception as exc:
                    self.failures.append((replica, exc))
                    continue
                assert out.images is not None
                np.testing.assert_allclose(
                    out.images, expected(out.model.version, out.latents), atol=1e-5)
                self.latest[replica] = out.model.version
                self.count += 1

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self.client(r, k))
                      for k, r in enumerate(list(self.replicas) * 3)]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def until(self, what: str, check: Callable[[], bool]) -> None:
        """Wait (yielding to the clients) until `check()` holds."""
        deadline = time.monotonic() + WAIT_S
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert all(not t.done() for t in self.tasks), "a client stopped"
            await asyncio.sleep(0.05)


async def _move(uri: str, version: int) -> None:
    await asyncio.to_thread(RegistryClient(uri).set_alias, "shared", "production", version)


async def test_alias_moves_twice_across_replicas_without_a_failed_request(
        replicas: dict[str, ServeProcess], shared_registry: str,
        fresh_triton: TritonProcess) -> None:
    url = fresh_triton.grpc_url
    a, b = replicas["a"], replicas["b"]
    assert await asyncio.to_thread(ready_models, url) == {decoder(1), encoder(1)}
    traffic = Traffic(replicas)
    traffic.start()
    try:
        await traffic.until("both replicas on v1", lambda: traffic.latest == {"a": 1, "b": 1})
        for old, new in ((1, 2), (2, 1)):
            await _move(shared_registry, new)
            await traffic.until(f"replica a on v{new}", lambda v=new: traffic.latest["a"] == v)
            # a has left `old` and found b's lease on it: it keeps the models loaded.
            kept = await asyncio.to_thread(
                a.wait_event, "triton models kept loaded: other replicas serve them",
                WAIT_S, model="shared", version=old)
            assert kept["replicas"] == ["replica-b"]
            assert traffic.latest["b"] == old
            assert await asyncio.to_thread(ready_models, url) == {
                decoder(1), encoder(1), decoder(2), encoder(2)}
            b.proc.send_signal(signal.SIGHUP)  # b follows the alias now
            await traffic.until(f"replica b on v{new}", lambda v=new: traffic.latest["b"] == v)
            # Neither serves `old` any more: b, the last to leave it, unloads it.
            await asyncio.to_thread(b.wait_event, "triton models unloaded", WAIT_S,
                                    model="shared", version=old)
            assert await asyncio.to_thread(ready_models, url) == {decoder(new), encoder(new)}
    finally:
        await traffic.close()
    assert not traffic.failures, traffic.failures[:5]
    assert traffic.count > 0
    # a leaves first: b still serves v1, so it stays; b leaves last and unloads it.
    assert await asyncio.to_thread(a.terminate) == 0
    assert await asyncio.to_thread(ready_models, url) == {decoder(1), encoder(1)}
    assert await asyncio.to_thread(b.terminate) == 0
    assert await asyncio.to_thread(ready_models, url) == set()


async def test_a_crashed_replicas_lease_expires(
        shared_registry: str, fresh_triton: TritonProcess, tmp_path: Path) -> None:
    url = fresh_triton.grpc_url
    started: dict[str, ServeProcess] = {}
    try:
        for name, poll in POLL_S.items():
            started[name] = ServeProcess(
                shared_registry, tmp_path / f"cache-{name}", default_model="shared",
                backend="triton", triton_url=url, triton_flavor="python",
                triton_model_control="explicit", registry_poll_s=poll,
                triton_lease_ttl_s=6, replica_id=f"replica-{name}",
            ).wait_serving(WAIT_S)
        a, b = started["a"], started["b"]
        await _move(shared_registry, 2)
        await asyncio.to_thread(
            a.wait_event, "triton models kept loaded: other replicas serve them", WAIT_S,
            model="shared", version=1)
        b.proc.kill()  # b dies holding its lease on v1; nobody renews it
        b.proc.wait()
        # a re-checks v1 at each renewal and unloads it once b's lease has expired.
        await asyncio.to_thread(a.wait_event, "triton models unloaded", WAIT_S,
                                model="shared", version=1)
        assert await asyncio.to_thread(ready_models, url) == {decoder(2), encoder(2)}
        tags = await asyncio.to_thread(RegistryClient(shared_registry).version_tags,
                                       "shared", 1)
        assert "latentserve.triton.lease.replica-a" not in tags
        assert "latentserve.triton.lease.replica-b" in tags  # expired, left behind
    finally:
        for served in started.values():
            served.close()
