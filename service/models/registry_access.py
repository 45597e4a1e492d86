"""The MLflow registry as the model manager calls it: off the event loop, reachability counted.

Every call runs in a worker thread (MLflow's client blocks); an `Unavailable` answer sets
`latentserve_registry_up` to 0 and counts a registry error, any answer sets it back to 1.
Example::

    registry = RegistryAccess(RegistryClient(uri), metrics)
    version = await registry.resolve("sprites-vae", "production")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from latentserve.core.errors import Unavailable
from latentserve.registry.store.mlflow_store import ModelRecord, RegistryClient
from latentserve.service.metrics import ServiceMetrics

T = TypeVar("T")


class RegistryAccess:
    """Async registry calls with `registry_up` / `registry_errors` kept current."""

    def __init__(self, client: RegistryClient, metrics: ServiceMetrics) -> None:
        self._client = client
        self._metrics = metrics

    async def resolve(self, name: str, alias: str) -> int:
        """The version `name@alias` points at (NotFound for an unknown model or alias)."""
        return await self._call(self._client.resolve, name, alias)

    async def check_version(self, name: str, version: int) -> None:
        """NotFound unless `name` has `version`."""
        await self._call(self._client.check_version, name, version)

    async def identity(self, name: str, version: int) -> str:
        """What no other version with this number ever has (creation time and content hash):
        NotFound once the version is gone."""
        return await self._call(self._client.version_identity, name, version)

    async def download(self, name: str, version: int, dest: Path) -> Path:
        """The version's bundle folder under `dest` (downloaded, or reused when complete)."""
        return await self._call(self._client.download, name, version, dest)

    async def list_models(self) -> list[ModelRecord]:
        """Every registered model."""
        return await self._call(self._client.list_models)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        try:
            result = await asyncio.to_thread(fn, *args)
        except Unavailable:
            self._metrics.registry_errors.inc()
            self._metrics.registry_up.set(0)
            raise
        self._metrics.registry_up.set(1)
        return result
