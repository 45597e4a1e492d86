"""The loaded versions: load → warm on first use, a bounded LRU, in-flight counts, drain → unload.

A version is downloaded, validated, loaded on the backend and warmed once, however many requests
ask for it meanwhile. Past `max_loaded_versions` the least recently used versions are retired,
but never a version an alias in use points at, one with requests in flight, or the version just
loaded (it was loaded to be served): when alias targets alone fill the pool, a pinned version is
held beyond the limit until the next one needs its place. A retired version takes no new
requests and unloads once its in-flight requests finish. A loaded version whose registry
identity changed (deleted and registered again under the same number) is replaced. Every load
and retirement is reported through `on_change`. Example::

    pool = VersionPool(settings, registry, factory, metrics, in_use=aliases.targets)
    async with pool.using("tiny", 3) as served:
        images = await served.backend.decode(z)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from latentserve.core.errors import LatentServeError, NotFound, Unavailable
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.service.backends.factory import BackendFactory
from latentserve.service.logs import get_logger
from latentserve.service.memory import release_free_memory
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import Key, ServedVersion
from latentserve.service.models.registry_access import RegistryAccess
from latentserve.service.models.warmup_memory import check_warmup_memory
from latentserve.service.settings import Settings

log = get_logger(__name__)
RetireHook = Callable[[str, int], None]
"""Called with (name, version) when a version is taken out of service (caches drop it)."""


class VersionPool:
    """The loaded versions of every model, least recently used first."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryAccess,
        factory: BackendFactory,
        metrics: ServiceMetrics,
        *,
        in_use: Callable[[], set[Key]] = set,
        on_retire: RetireHook | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        """`in_use`: the versions aliases point at (evicted last); `on_change(name)`: a version
        of `name` was loaded or retired."""
        self._settings = settings
        self._registry = registry
        self._factory = factory
        self._metrics = metrics
        self._in_use = in_use
        self._on_retire = on_retire or (lambda _name, _version: None)
        self._on_change = on_change or (lambda _name: None)
        self._loaded: collections.OrderedDict[Key, ServedVersion] = collections.OrderedDict()
        self._loading: dict[Key, asyncio.Task[ServedVersion]] = {}
        self._unloads: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- queries
    def __contains__(self, key: Key) -> bool:
        return key in self._loaded

    def get(self, key: Key) -> ServedVersion | None:
        """The loaded version `key`, if any (no LRU touch)."""
        return self._loaded.get(key)

    def keys(self) -> list[Key]:
        """(name, version) of every loaded version, least recently used first."""
        return list(self._loaded)

    def latest_bundle(self, name: str) -> Bundle | None:
        """The bundle of the most recently used loaded version of `name`, if any."""
        for (n, _), served in reversed(self._loaded.items()):
            if n == name:
                return served.bundle
        return None

    # ----------------------------------------------------------------- use
    @contextlib.asynccontextmanager
    async def using(self, name: str, version: int) -> AsyncIterator[ServedVersion]:
        """Hold (name, version), loading it first if needed, for one request."""
        served = await self.load(name, version)
        served.inflight += 1
        served.drained.clear()
        try:
            yield served
        finally:
            served.inflight -= 1
            if served.inflight == 0:
                served.drained.set()
                if served.retired:
                    self._spawn(self._unload(served))

    async def load(self, name: str, version: int) -> ServedVersion:
        """(name, version) loaded and warmed (once, however many ask at a time), now the most
        recently used."""
        key = (name, version)
        served = self._loaded.get(key)
        if served is not None and not served.retired:
            self._loaded.move_to_end(key)
            return served
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(name, version))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        return await asyncio.shield(task)

    async def reload(self, name: str, version: int) -> ServedVersion:
        """Load (name, version) afresh even if loaded (its registry identity changed); the
        stale one keeps serving until the fresh one is warm, then retires."""
        key = (name, version)
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(name, version))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        return await asyncio.shield(task)

    async def _load(self, name: str, version: int) -> ServedVersion:
        try:
            identity = await self._registry.identity(name, version)
            root = await self._registry.download(name, version, self._settings.cache_dir)
            bundle = await asyncio.to_thread(load_bundle, root)
            backend = self._factory(bundle, version)
            if backend.kind == "embedded" and self._settings.warmup_memory_bytes:
                await asyncio.to_thread(check_warmup_memory, bundle,
                                        self._settings.warmup_memory_bytes)
            await backend.load()
            try:
                await backend.warm()
            except BaseException:
                await backend.unload()
                raise
            await asyncio.to_thread(release_free_memory)  # the warm-up batch's pages
        except LatentServeError as exc:
            self._metrics.model_load_failures.labels(model=name).inc()
            log.warning("model load failed", model=name, version=version, error=str(exc))
            if isinstance(exc, NotFound | Unavailable):
                raise
            raise Unavailable(f"{name} version {version} could not be loaded: {exc}") from exc
        except Exception as exc:  # a backend library's own error (onnxruntime, tritonclient)
            self._metrics.model_load_failures.labels(model=name).inc()
            log.exception("model load failed", model=name, version=version,
                          error_type=type(exc).__name__, error=str(exc))
            raise Unavailable(f"{name} version {version} could not be loaded "
                              f"({type(exc).__name__}); see server logs") from exc
        served = ServedVersion(name, version, bundle, backend, identity)
        served.drained.set()
        stale = self._loaded.get(served.key)
        self._loaded[served.key] = served
        self._loaded.move_to_end(served.key)
        log.info("model loaded", model=name, version=version, backend=backend.kind)
        if stale is not None:
            self._take_out(stale)
        self.trim(keep=served.key)
        self._on_change(name)
        return served

    # ----------------------------------------------------------------- retirement
    def trim(self, keep: Key | None = None) -> None:
        """Retire least recently used versions over max_loaded_versions, never an alias target,
        a version with requests in flight, or `keep` (the version just loaded)."""
        excess = len(self._loaded) - self._settings.max_loaded_versions
        if excess <= 0:
            return
        in_use = self._in_use()
        spare = [served for key, served in self._loaded.items()  # LRU first
                 if key != keep and key not in in_use and served.inflight == 0]
        for served in spare[:excess]:
            self.retire(served)

    def retire(self, served: ServedVersion) -> None:
        """Take a version out of service; it unloads once its in-flight requests finish."""
        if self._loaded.get(served.key) is served:
            del self._loaded[served.key]
        self._take_out(served)

    def _take_out(self, served: ServedVersion) -> None:
        served.retired = True
        self._on_retire(served.name, served.version)
        self._on_change(served.name)
        if served.inflight == 0:
            self._spawn(self._unload(served))

    async def _unload(self, served: ServedVersion) -> None:
        if served.backend.ready:
            await served.backend.unload()
            log.info("model unloaded", model=served.name, version=served.version)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def close(self) -> None:
        """Cancel loads and pending unloads, then unload every loaded version."""
        tasks: list[asyncio.Task[Any]] = [*self._unloads, *self._loading.values()]
        for task in tasks:
            task.cancel()
        for unload in list(self._unloads):
            with contextlib.suppress(BaseException):
                await unload
        loaded, self._loaded = list(self._loaded.values()), collections.OrderedDict()
        for served in loaded:
            await self._unload(served)
