"""AliasTable: resolution remembered until the watcher moves it, version pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentserve.core.errors import FailedPrecondition, NotFound
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.aliases import AliasTable
from latentserve.service.models.registry_access import RegistryAccess
from tests.fixtures.models import versioned_registry
from tests.fixtures.service import service_settings


def make_table(uri: str, tmp_path: Path, changed: list[str], **overrides: object) -> AliasTable:
    settings = service_settings(uri, tmp_path / "cache", default_model="m", **overrides)
    registry = RegistryAccess(RegistryClient(uri), ServiceMetrics())
    return AliasTable(settings, registry, on_change=changed.append)


@pytest.fixture
def uri(empty_registry_uri: str, tmp_path: Path) -> str:
    return versioned_registry(empty_registry_uri, tmp_path / "bundles", "m", versions=2)


async def test_an_alias_is_resolved_once_then_moved_by_point(uri: str, tmp_path: Path) -> None:
    changed: list[str] = []
    table = make_table(uri, tmp_path, changed)
    assert await table.version_of("m", "production") == 1
    RegistryClient(uri).set_alias("m", "production", 2)
    assert await table.version_of("m", "production") == 1  # until the watcher switches it
    assert changed == ["m"]
    table.point("m", "production", 2)
    assert await table.version_of("m", "production") == 2
    assert changed == ["m", "m"]
    assert table.targets() == {("m", 2)} and table.aliases_of("m", 2) == ["production"]
    assert table.get("m", "staging") is None
    with pytest.raises(NotFound):
        await table.version_of("m", "staging")


async def test_pins_are_limited_to_the_pin_aliases_targets(uri: str, tmp_path: Path) -> None:
    table = make_table(uri, tmp_path, [], version_pin_aliases="production,staging")
    await table.check_pin("m", 1)
    with pytest.raises(FailedPrecondition, match="production, staging"):
        await table.check_pin("m", 2)  # staging is unknown (skipped), production is at 1


async def test_without_pin_aliases_any_version_may_be_pinned(uri: str, tmp_path: Path) -> None:
    changed: list[str] = []
    table = make_table(uri, tmp_path, changed)
    await table.check_pin("m", 2)
    assert changed == []  # nothing was resolved
