"""ModelManager: the facade the server and servicer use to serve generator versions.

It resolves `ModelRef`s (`aliases`), hands out leases on loaded versions (`pool`), loads the
default model at start (retrying while the registry or backend is down), follows the aliases in
use (`watcher`) and keeps health and the model gauges current (`serving_state`). Example::

    manager = ModelManager(settings, RegistryClient(uri), factory, metrics)
    await manager.start()
    async with manager.lease("sprites-vae", alias="production") as lease:
        images = await lease.backend.decode(z)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from latentserve.core.errors import LatentServeError, NotFound, Unavailable
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.store.mlflow_store import ModelRecord, RegistryClient
from latentserve.service.backends.factory import BackendFactory
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.aliases import AliasTable
from latentserve.service.models.lease import Key, Lease
from latentserve.service.models.pool import RetireHook, VersionPool
from latentserve.service.models.registry_access import RegistryAccess
from latentserve.service.models.serving_state import HealthHook, ServingState, model_state
from latentserve.service.models.unknown_names import UnknownNames, sqlite_stamp
from latentserve.service.models.watcher import AliasWatcher
from latentserve.service.settings import Settings

log = get_logger(__name__)
MAX_BOOTSTRAP_DELAY_S = 10.0
"""Longest wait between tries to load the default model at start."""


class ModelManager:
    """Resolves, loads, caches and swaps generator versions for the servicer."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryClient,
        factory: BackendFactory,
        metrics: ServiceMetrics,
        on_health: HealthHook | None = None,
        on_retire: RetireHook | None = None,
    ) -> None:
        self._settings = settings
        self._registry = RegistryAccess(registry, metrics)
        self._state = ServingState(metrics, on_health)
        self._aliases = AliasTable(settings, self._registry, on_change=self._publish)
        self._pool = VersionPool(settings, self._registry, factory, metrics,
                                 in_use=self._aliases.targets, on_retire=on_retire,
                                 on_change=self._publish)
        self._unknown = UnknownNames(self._registry, settings.unknown_name_ttl_s,
                                     stamp=sqlite_stamp(registry.registry_uri))
        self._watcher = AliasWatcher(settings, self._registry, self._aliases, self._pool,
                                     metrics, on_poll=self._unknown.forget)
        self._records: dict[str, ModelRecord] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle
    @property
    def ready(self) -> bool:
        """True once the default model's default alias is loaded."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Begin loading the default model (retrying with backoff) and watching aliases."""
        self._state.set_ready(False)
        loop = asyncio.get_running_loop()
        # `self.refresh` is looked up at each poll: the poll, SIGHUP and tests share one seam.
        self._tasks = [loop.create_task(self._watcher.poll_forever(lambda: self.refresh())),
                       loop.create_task(self._bootstrap())]

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the default model is served (tests, `serve` start-up output)."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    async def close(self) -> None:
        """Stop watching and unload every version."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self._pool.close()

    async def refresh(self) -> None:
        """Re-resolve every alias in use and switch the ones that moved (webhook seam too)."""
        await self._watcher.refresh()

    # ----------------------------------------------------------------- requests
    async def resolve(
        self, name: str = "", *, version: int = 0, alias: str = ""
    ) -> tuple[str, int, str]:
        """(name, version, alias used) for a ModelRef; defaults from settings."""
        name = name or self._settings.default_model
        if version:
            if (name, version) not in self._pool:
                await self._unknown.check(name)  # an unknown model: before the pin aliases
            await self._aliases.check_pin(name, version)
            if (name, version) not in self._pool:
                await self._unknown.check(name, version=version)
                await self._registry.check_version(name, version)
            return name, version, ""
        alias = alias or self._settings.default_alias
        if self._aliases.get(name, alias) is None:
            await self._unknown.check(name, alias=alias)
        return name, await self._aliases.version_of(name, alias), alias

    @contextlib.asynccontextmanager
    async def lease(
        self, name: str = "", *, version: int = 0, alias: str = ""
    ) -> AsyncIterator[Lease]:
        """Hold a loaded version for the duration of one request."""
        name, version, used_alias = await self.resolve(name, version=version, alias=alias)
        async with self._pool.using(name, version) as served:
            yield Lease(served, used_alias)

    async def list_models(self) -> list[tuple[ModelRecord, int]]:
        """Every registered model with the version its default alias serves here (0: none)."""
        try:
            self._records = {r.name: r for r in await self._registry.list_models()}
        except Unavailable:
            if not self._records:
                raise
        alias = self._settings.default_alias
        return [
            (r, v if (r.name, v) in self._pool else 0)
            for r in self._records.values()
            for v in [self._aliases.get(r.name, alias) or 0]
        ]

    def aliases_of(self, name: str, version: int) -> list[str]:
        """Aliases known to point at (name, version)."""
        return self._aliases.aliases_of(name, version)

    def loaded_versions(self) -> list[Key]:
        """(name, version) of every loaded version, least recently used first."""
        return self._pool.keys()

    def loaded_bundle(self, name: str) -> Bundle | None:
        """The bundle of the most recently used loaded version of `name`, if any."""
        return self._pool.latest_bundle(name)

    # ----------------------------------------------------------------- internals
    def _publish(self, name: str) -> None:
        """A version or alias of `name` changed: publish its state (where it differs)."""
        self._state.update(name, model_state(name, self._pool.keys(), self._aliases.items(),
                                             self._settings.default_alias))

    async def _bootstrap(self) -> None:
        """Load the default model, retrying with backoff while the registry/backend is down."""
        delay = 0.25
        while True:
            try:
                async with self.lease():
                    pass
            except (Unavailable, NotFound) as exc:
                log.warning("default model not ready; retrying", error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BOOTSTRAP_DELAY_S)
                continue
            await self._preload_others()
            self._ready.set()
            self._state.set_ready(True)
            return

    async def _preload_others(self) -> None:
        """Best effort: load the default alias of every other registered model (for health)."""
        try:
            entries = await self.list_models()
        except LatentServeError as exc:
            log.warning("could not list models to preload", error=str(exc))
            return
        alias = self._settings.default_alias
        wanted = [r.name for r, _ in entries
                  if alias in r.aliases and r.name != self._settings.default_model]
        for name in wanted[: self._settings.max_loaded_versions - 1]:
            try:
                async with self.lease(name, alias=alias):
                    pass
            except LatentServeError as exc:
                log.warning("preload failed", model=name, error=str(exc))
