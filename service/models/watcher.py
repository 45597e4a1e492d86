"""Following the aliases in use: the registry poll and the hot swap of an alias that moved.

A swap loads and warms the new version first, re-checks that the alias still names it (a
rollback may have moved it back meanwhile), then switches the alias atomically; the old version
drains its in-flight requests and unloads. A new version that fails to load leaves the old one
serving and is retried after a backoff that doubles per failure. Each poll also checks the
registry identity of every loaded version: one deleted and registered again under the same
number is loaded afresh (never served from the old weights), one deleted is retired; and it
tells `on_poll` (the negative cache of unknown names forgets its snapshot). Example::

    watcher = AliasWatcher(settings, registry, aliases, pool, metrics)
    await watcher.refresh()            # one poll (what SIGHUP triggers)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from latentserve.core.errors import LatentServeError, NotFound
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.aliases import AliasTable
from latentserve.service.models.lease import Key
from latentserve.service.models.pool import VersionPool
from latentserve.service.models.registry_access import RegistryAccess
from latentserve.service.settings import Settings

log = get_logger(__name__)
MAX_BACKOFF_POLLS = 30
"""After failing polls the watcher waits up to this many poll intervals."""
MAX_RETRY_S = 3600.0
"""Longest wait before a version that failed to load is tried again."""


class AliasWatcher:
    """Re-resolves every alias in use and swaps those that moved."""

    def __init__(self, settings: Settings, registry: RegistryAccess, aliases: AliasTable,
                 pool: VersionPool, metrics: ServiceMetrics,
                 on_poll: Callable[[], None] | None = None) -> None:
        self._on_poll = on_poll or (lambda: None)
        self._settings = settings
        self._registry = registry
        self._aliases = aliases
        self._pool = pool
        self._metrics = metrics
        self._refreshing = asyncio.Lock()
        self._backoff: dict[Key, tuple[int, float]] = {}
        """Versions whose load failed: (failures so far, loop time before which not to retry)."""

    async def poll_forever(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run `refresh` every poll interval forever: no exception ends it (each is logged,
        counted, and the next poll waits longer, up to MAX_BACKOFF_POLLS intervals)."""
        failures = 0
        while True:
            poll = self._settings.registry_poll_s
            await asyncio.sleep(poll * min(2 ** failures, MAX_BACKOFF_POLLS))
            try:
                await refresh()
                failures = 0
            except Exception as exc:
                failures += 1
                self._metrics.watch_errors.inc()
                log.exception("alias watch failed; retrying", error_type=type(exc).__name__,
                              error=str(exc), failures=failures)

    async def refresh(self) -> None:
        """Re-resolve every alias in use and switch the ones that moved."""
        async with self._refreshing:
            self._on_poll()
            for (name, alias), current in self._aliases.items():
                try:
                    latest = await self._registry.resolve(name, alias)
                except LatentServeError as exc:
                    log.warning("alias refresh failed", model=name, alias=alias, error=str(exc))
                    continue
                if latest != current and self._may_try(name, latest):
                    await self._switch(name, alias, current, latest)
            await self._check_identities()

    async def _check_identities(self) -> None:
        """Reload each loaded version whose registry identity changed; retire deleted ones."""
        loaded = self._pool.keys()  # a copy: reloads and retirements change the pool
        for key in loaded:
            served = self._pool.get(key)
            if served is None:
                continue
            try:
                identity = await self._registry.identity(*key)
            except NotFound:
                log.warning("loaded version deleted from the registry; retiring", model=key[0],
                            version=key[1])
                self._pool.retire(served)
                continue
            except LatentServeError as exc:
                log.warning("version identity check failed", model=key[0], version=key[1],
                            error=str(exc))
                continue
            if identity == served.identity:
                continue
            log.warning("version registered again with other content; reloading",
                        model=key[0], version=key[1])
            try:
                await self._pool.reload(*key)
            except LatentServeError as exc:
                log.error("reload failed; retiring the old weights", model=key[0],
                          version=key[1], error=str(exc))
                self._pool.retire(served)

    def _may_try(self, name: str, version: int) -> bool:
        """False while a version that failed to load is in its retry backoff."""
        failed = self._backoff.get((name, version))
        return failed is None or asyncio.get_running_loop().time() >= failed[1]

    def _failed(self, name: str, version: int) -> float:
        """Record a failed load of (name, version); returns seconds until it is retried."""
        count = self._backoff.get((name, version), (0, 0.0))[0] + 1
        delay = min(self._settings.registry_poll_s * float(2 ** (count - 1)), MAX_RETRY_S)
        self._backoff[(name, version)] = (count, asyncio.get_running_loop().time() + delay)
        return delay

    async def _switch(self, name: str, alias: str, old: int, new: int) -> None:
        """Load + warm `new`, then point the alias at it if it still names `new`; `old` drains
        and unloads. A failed load keeps `old` and retries `new` after a backoff."""
        try:
            await self._pool.load(name, new)
        except LatentServeError as exc:
            retry_s = self._failed(name, new)
            log.error("alias moved but new version failed; still serving old",
                      model=name, alias=alias, old=old, new=new, error=str(exc),
                      retry_s=retry_s)
            return
        self._backoff.pop((name, new), None)
        # The alias may have moved again (a rollback) while `new` loaded and warmed.
        try:
            now = await self._registry.resolve(name, alias)
        except LatentServeError as exc:
            log.warning("alias re-check failed; switching at the next poll", model=name,
                        alias=alias, error=str(exc))
            now = -1
        if now != new:
            log.warning("alias moved again while the new version warmed; not switching",
                        model=name, alias=alias, old=old, loaded=new, now=now)
            self._retire_unused(name, new)
            return
        self._aliases.point(name, alias, new)
        self._metrics.alias_swaps.labels(model=name, alias=alias).inc()
        log.info("alias switched", model=name, alias=alias, old=old, new=new)
        self._retire_unused(name, old)
        self._pool.trim()

    def _retire_unused(self, name: str, version: int) -> None:
        """Retire (name, version) if it is loaded and no alias in use points at it."""
        served = self._pool.get((name, version))
        if served is not None and (name, version) not in self._aliases.targets():
            self._pool.retire(served)
