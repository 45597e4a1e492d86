"""VersionPool: load once, LRU eviction (alias targets last), drain before unload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from latentserve.core.errors import NotFound
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.backends.base import Backend
from latentserve.service.backends.factory import backend_factory
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import Key
from latentserve.service.models.pool import VersionPool
from latentserve.service.models.registry_access import RegistryAccess
from tests.fixtures.models import eventually, versioned_registry
from tests.fixtures.service import service_settings


class Recorder:
    """What the pool reported: retirements, changes, and the backends it built."""

    def __init__(self) -> None:
        self.retired: list[Key] = []
        self.changed: list[str] = []
        self.built: list[Backend] = []


def make_pool(uri: str, tmp_path: Path, recorder: Recorder, *, capacity: int = 2,
              in_use: set[Key] | None = None) -> tuple[VersionPool, ServiceMetrics]:
    settings = service_settings(uri, tmp_path / "cache", default_model="m",
                                max_loaded_versions=capacity)
    metrics = ServiceMetrics()
    real = backend_factory(settings, metrics)

    def factory(bundle: Bundle, version: int) -> Backend:
        backend = real(bundle, version)
        recorder.built.append(backend)
        return backend

    pool = VersionPool(settings, RegistryAccess(RegistryClient(uri), metrics), factory, metrics,
                       in_use=lambda: set(in_use or ()),
                       on_retire=lambda n, v: recorder.retired.append((n, v)),
                       on_change=recorder.changed.append)
    return pool, metrics


@pytest.fixture
def uri(empty_registry_uri: str, tmp_path: Path) -> str:
    return versioned_registry(empty_registry_uri, tmp_path / "bundles", "m", versions=3)


async def test_least_recently_used_version_is_evicted_first(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, _ = make_pool(uri, tmp_path, recorder)
    await pool.load("m", 1)
    await pool.load("m", 2)
    await pool.load("m", 1)  # v1 used again: v2 is now the least recently used
    assert pool.keys() == [("m", 2), ("m", 1)]
    await pool.load("m", 3)
    await eventually(lambda: not recorder.built[1].ready)
    assert pool.keys() == [("m", 1), ("m", 3)]
    assert recorder.retired == [("m", 2)]
    assert [b.ready for b in recorder.built] == [True, False, True]
    await pool.close()
    assert not any(b.ready for b in recorder.built)


async def test_alias_targets_are_evicted_last(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, _ = make_pool(uri, tmp_path, recorder, in_use={("m", 1)})
    for version in (1, 2, 3):
        await pool.load("m", version)
    assert pool.keys() == [("m", 1), ("m", 3)]  # v1 is older, but an alias points at it
    assert recorder.retired == [("m", 2)]
    await pool.close()


async def test_concurrent_requests_share_one_load(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, _ = make_pool(uri, tmp_path, recorder)
    first, second = await asyncio.gather(pool.load("m", 1), pool.load("m", 1))
    assert first is second and len(recorder.built) == 1
    assert recorder.changed == ["m"]
    await pool.close()


async def test_a_retired_version_unloads_only_once_drained(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, _ = make_pool(uri, tmp_path, recorder)
    async with pool.using("m", 1) as served:
        assert served.inflight == 1 and not served.drained.is_set()
        pool.retire(served)
        await asyncio.sleep(0)  # an unload spawned now would get its turn here
        assert served.retired and served.backend.ready  # still serving its request
        assert ("m", 1) not in pool
    await eventually(lambda: served.drained.is_set() and not served.backend.ready)
    await pool.close()


async def test_a_missing_version_is_not_found_and_counted(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, metrics = make_pool(uri, tmp_path, recorder)
    with pytest.raises(NotFound):
        await pool.load("m", 9)
    assert pool.keys() == [] and recorder.changed == []
    assert metrics.registry.get_sample_value(
        "latentserve_model_load_failures_total", {"model": "m"}) == 1
    await pool.close()


async def test_latest_bundle_is_the_most_recently_used(uri: str, tmp_path: Path) -> None:
    recorder = Recorder()
    pool, _ = make_pool(uri, tmp_path, recorder)
    one = await pool.load("m", 1)
    two = await pool.load("m", 2)
    assert pool.latest_bundle("m") is two.bundle
    await pool.load("m", 1)
    assert pool.latest_bundle("m") is one.bundle and pool.latest_bundle("other") is None
    await pool.close()
