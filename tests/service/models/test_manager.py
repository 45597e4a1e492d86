"""ModelManager over a real sqlite registry: start-up, a hot swap published once, resolution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from latentserve.core.errors import NotFound
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.backends.factory import backend_factory
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.manager import ModelManager
from tests.fixtures.models import eventually, versioned_registry
from tests.fixtures.service import service_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the manager lives on the fixture's loop


class Started:
    """A started manager with what it published to health."""

    def __init__(self, manager: ModelManager, metrics: ServiceMetrics,
                 health: list[tuple[str, bool]]) -> None:
        self.manager, self.metrics, self.health = manager, metrics, health

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def uri(empty_registry_uri: str, tmp_path: Path) -> str:
    return versioned_registry(empty_registry_uri, tmp_path / "bundles", "m", versions=2)


@pytest.fixture
async def started(uri: str, tmp_path: Path) -> AsyncIterator[Started]:
    settings = service_settings(uri, tmp_path / "cache", default_model="m",
                                max_loaded_versions=2)
    metrics = ServiceMetrics()
    health: list[tuple[str, bool]] = []
    manager = ModelManager(settings, RegistryClient(uri), backend_factory(settings, metrics),
                           metrics, on_health=lambda name, ok: health.append((name, ok)))
    await manager.start()
    await manager.wait_ready(60)
    yield Started(manager, metrics, health)
    await manager.close()


async def test_start_loads_the_default_alias_and_becomes_ready(started: Started) -> None:
    assert started.manager.ready
    assert started.manager.loaded_versions() == [("m", 1)]
    assert started.health == [("", False), ("m", False), ("m", True), ("", True)]
    assert started.value("latentserve_serving_version", model="m", alias="production") == 1
    assert started.value("latentserve_registry_up") == 1


async def test_an_alias_swap_publishes_health_and_gauges_once(started: Started,
                                                              uri: str) -> None:
    manager, before = started.manager, list(started.health)
    async with manager.lease() as held:  # a request in flight across the swap
        RegistryClient(uri).set_alias("m", "production", 2)
        await manager.refresh()
        async with manager.lease() as lease:
            assert (lease.served.version, lease.alias) == (2, "production")
        assert held.served.retired and held.backend.ready  # v1 drains its request
    await eventually(lambda: not held.backend.ready)
    assert manager.loaded_versions() == [("m", 2)]
    assert started.health == before  # "m" served throughout: nothing to publish
    assert started.value("latentserve_alias_swaps_total", model="m", alias="production") == 1
    assert started.value("latentserve_serving_version", model="m", alias="production") == 2
    assert started.value("latentserve_loaded_versions", model="m") == 1
    assert manager.aliases_of("m", 2) == ["production"] and manager.aliases_of("m", 1) == []
    await manager.refresh()  # nothing moved: nothing changes
    assert started.value("latentserve_alias_swaps_total", model="m", alias="production") == 1


async def test_pinned_versions_resolve_without_an_alias(started: Started) -> None:
    manager = started.manager
    assert await manager.resolve(version=2) == ("m", 2, "")
    assert await manager.resolve("m", alias="production") == ("m", 1, "production")
    with pytest.raises(NotFound):
        await manager.resolve(version=9)
    async with manager.lease(version=2) as lease:
        assert lease.alias == "" and lease.bundle.spec.name == "m"
    assert manager.loaded_versions() == [("m", 1), ("m", 2)]
    assert started.health[-1] == ("", True)  # a pinned load leaves health as it was


async def test_list_models_names_the_loaded_default_version(started: Started) -> None:
    [(record, loaded)] = await started.manager.list_models()
    assert (record.name, loaded) == ("m", 1)
    assert started.manager.loaded_bundle("m") is not None
