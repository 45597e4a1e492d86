"""ModelManager: which generator version serves a request, and keeping versions loaded.

It resolves `ModelRef`s against the MLflow registry, downloads + validates bundles, loads them
on the backend (load → warm), keeps a bounded LRU of loaded versions, reference-counts in-flight
requests, and follows the aliases in use: when an alias moves, the new version is loaded and
warmed first, then resolution switches atomically and the old version drains before unloading.
Example::

    manager = ModelManager(settings, RegistryClient(uri), factory, metrics)
    await manager.start()
    async with manager.lease("sprites-vae", alias="production") as served:
        images = await served.backend.decode(z)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from latentserve.core.errors import FailedPrecondition, LatentServeError, NotFound, Unavailable
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.store.mlflow_store import ModelRecord, RegistryClient
from latentserve.service.backends.base import Backend
from latentserve.service.backends.factory import BackendFactory
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings

log = get_logger(__name__)
Key = tuple[str, int]
T = TypeVar("T")
HealthHook = Callable[[str, bool], None]
"""Called with (service name, serving?) whenever a model's or the overall readiness changes."""
RetireHook = Callable[[str, int], None]
"""Called with (name, version) when a version is taken out of service (caches drop it)."""


@dataclass(eq=False)
class ServedVersion:
    """A loaded model version and the requests using it."""

    name: str
    version: int
    bundle: Bundle
    backend: Backend
    inflight: int = 0
    retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Lease:
    """What a request holds while it runs: the version and how it was resolved."""

    served: ServedVersion
    alias: str

    @property
    def bundle(self) -> Bundle:
        return self.served.bundle

    @property
    def backend(self) -> Backend:
        return self.served.backend


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
        self._registry = registry
        self._factory = factory
        self._metrics = metrics
        self._on_health = on_health or (lambda _name, _ok: None)
        self._on_retire = on_retire or (lambda _name, _version: None)
        self._loaded: collections.OrderedDict[Key, ServedVersion] = collections.OrderedDict()
        self._loading: dict[Key, asyncio.Task[ServedVersion]] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._records: dict[str, ModelRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._refreshing = asyncio.Lock()
        self._backoff: dict[Key, tuple[int, float]] = {}
        """Versions whose load failed: (failures so far, loop time before which not to retry)."""

    # ----------------------------------------------------------------- lifecycle
    @property
    def ready(self) -> bool:
        """True once the default model's default alias is loaded."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Begin loading the default model (retrying with backoff) and watching aliases."""
        self._on_health("", False)
        self._spawn(self._bootstrap())
        self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the default model is served (tests, `serve` start-up output)."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    async def close(self) -> None:
        """Stop watching and unload every version."""
        for task in [self._watcher, *self._tasks, *self._loading.values()]:
            if task is not None:
                task.cancel()
        for task in [self._watcher, *self._tasks]:
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        loaded, self._loaded = list(self._loaded.values()), collections.OrderedDict()
        for served in loaded:
            await self._unload(served)

    # ----------------------------------------------------------------- resolution
    async def resolve(
        self, name: str = "", *, version: int = 0, alias: str = ""
    ) -> tuple[str, int, str]:
        """(name, version, alias used) for a ModelRef; defaults from settings."""
        name = name or self._settings.default_model
        if version:
            pins = self._settings.pin_aliases()
            if pins:
                await self._check_pin(name, version, pins)
            if (name, version) not in self._loaded:
                await self._registry_call(self._registry.check_version, name, version)
            return name, version, ""
        alias = alias or self._settings.default_alias
        known = self._aliases.get((name, alias))
        if known is None:
            known = await self._registry_call(self._registry.resolve, name, alias)
            self._aliases[(name, alias)] = known
            self._metrics.serving_version.labels(model=name, alias=alias).set(known)
        return name, known, alias

    async def _check_pin(self, name: str, version: int, pins: list[str]) -> None:
        """A pinned version must be one a pin alias points at (version_pin_aliases)."""
        for alias in pins:
            known = self._aliases.get((name, alias))
            if known is None:
                try:
                    _name, known, _alias = await self.resolve(name, alias=alias)
                except NotFound:
                    continue
            if known == version:
                return
        raise FailedPrecondition(
            f"{name} version {version} cannot be pinned here: this service serves only the "
            f"versions that {', '.join(pins)} point at; ask for the alias instead")

    @contextlib.asynccontextmanager
    async def lease(
        self, name: str = "", *, version: int = 0, alias: str = ""
    ) -> AsyncIterator[Lease]:
        """Hold a loaded version for the duration of one request."""
        name, version, used_alias = await self.resolve(name, version=version, alias=alias)
        served = await self._get_loaded(name, version)
        served.inflight += 1
        served.drained.clear()
        try:
            yield Lease(served, used_alias)
        finally:
            served.inflight -= 1
            if served.inflight == 0:
                served.drained.set()
                if served.retired:
                    self._spawn(self._unload(served))

    async def list_models(self) -> list[tuple[ModelRecord, int]]:
        """Every registered model with the version its default alias serves here (0: none)."""
        try:
            records = await self._registry_call(self._registry.list_models)
            self._records = {r.name: r for r in records}
        except Unavailable:
            if not self._records:
                raise
        alias = self._settings.default_alias
        return [
            (r, v if (r.name, v) in self._loaded else 0)
            for r in self._records.values()
            for v in [self._aliases.get((r.name, alias), 0)]
        ]

    def aliases_of(self, name: str, version: int) -> list[str]:
        """Aliases known to point at (name, version)."""
        return sorted(a for (n, a), v in self._aliases.items() if n == name and v == version)

    def loaded_versions(self) -> list[Key]:
        """(name, version) of every loaded version, least recently used first."""
        return list(self._loaded)

    def loaded_bundle(self, name: str) -> Bundle | None:
        """The bundle of the most recently used loaded version of `name`, if any."""
        for (n, _), served in reversed(self._loaded.items()):
            if n == name:
                return served.bundle
        return None

    # ----------------------------------------------------------------- loading
    async def _get_loaded(self, name: str, version: int) -> ServedVersion:
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

    async def _load(self, name: str, version: int) -> ServedVersion:
        try:
            root = await self._registry_call(
                self._registry.download, name, version, self._settings.cache_dir
            )
            bundle = await asyncio.to_thread(load_bundle, root)
            backend = self._factory(bundle, version)
            await backend.load()
            try:
                await backend.warm()
            except BaseException:
                await backend.unload()
                raise
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
        served = ServedVersion(name, version, bundle, backend)
        served.drained.set()
        self._loaded[(name, version)] = served
        self._evict_beyond_capacity()
        self._publish_loaded(name)
        log.info("model loaded", model=name, version=version, backend=backend.kind)
        return served

    def _evict_beyond_capacity(self) -> None:
        """Retire least recently used versions over max_loaded_versions (alias targets last)."""
        excess = len(self._loaded) - self._settings.max_loaded_versions
        if excess <= 0:
            return
        targets = set(self._aliases.items())
        in_use = {(n, v) for (n, _a), v in targets}
        order = sorted(self._loaded, key=lambda k: k in in_use)  # stable: LRU first
        for key in order[:excess]:
            self._retire(self._loaded[key])

    def _retire(self, served: ServedVersion) -> None:
        """Take a version out of service; it unloads once its in-flight requests finish."""
        self._loaded.pop((served.name, served.version), None)
        served.retired = True
        self._on_retire(served.name, served.version)
        self._publish_loaded(served.name)
        if served.inflight == 0:
            self._spawn(self._unload(served))

    async def _unload(self, served: ServedVersion) -> None:
        if served.backend.ready:
            await served.backend.unload()
            log.info("model unloaded", model=served.name, version=served.version)

    def _publish_loaded(self, name: str) -> None:
        count = sum(1 for n, _v in self._loaded if n == name)
        self._metrics.loaded_versions.labels(model=name).set(count)
        default = self._aliases.get((name, self._settings.default_alias))
        self._on_health(name, default is not None and (name, default) in self._loaded)

    # ----------------------------------------------------------------- watching
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
                delay = min(delay * 2, 10.0)
                continue
            await self._preload_others()
            self._ready.set()
            self._on_health("", True)
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

    async def _watch_loop(self) -> None:
        """Poll the registry forever: no exception ends it (each is logged, counted, and the
        next poll waits longer, up to 30 polls)."""
        failures = 0
        while True:
            poll = self._settings.registry_poll_s
            await asyncio.sleep(poll * min(2 ** failures, 30))
            try:
                await self.refresh()
                failures = 0
            except Exception as exc:
                failures += 1
                self._metrics.watch_errors.inc()
                log.exception("alias watch failed; retrying", error_type=type(exc).__name__,
                              error=str(exc), failures=failures)

    async def refresh(self) -> None:
        """Re-resolve every alias in use and switch the ones that moved (webhook seam too)."""
        async with self._refreshing:
            for (name, alias), current in list(self._aliases.items()):
                try:
                    latest = await self._registry_call(self._registry.resolve, name, alias)
                except LatentServeError as exc:
                    log.warning("alias refresh failed", model=name, alias=alias, error=str(exc))
                    continue
                if latest != current and self._may_try(name, latest):
                    await self._switch(name, alias, current, latest)

    def _may_try(self, name: str, version: int) -> bool:
        """False while a version that failed to load is in its retry backoff."""
        failed = self._backoff.get((name, version))
        return failed is None or asyncio.get_running_loop().time() >= failed[1]

    def _failed(self, name: str, version: int) -> float:
        """Record a failed load of (name, version); returns seconds until it is retried."""
        count = self._backoff.get((name, version), (0, 0.0))[0] + 1
        delay = min(self._settings.registry_poll_s * float(2 ** (count - 1)), 3600.0)
        self._backoff[(name, version)] = (count, asyncio.get_running_loop().time() + delay)
        return delay

    async def _switch(self, name: str, alias: str, old: int, new: int) -> None:
        """Load + warm `new`, then point the alias at it if it still names `new`; `old` drains
        and unloads. A failed load keeps `old` and retries `new` after a backoff."""
        try:
            await self._get_loaded(name, new)
        except LatentServeError as exc:
            retry_s = self._failed(name, new)
            log.error("alias moved but new version failed; still serving old",
                      model=name, alias=alias, old=old, new=new, error=str(exc),
                      retry_s=retry_s)
            return
        self._backoff.pop((name, new), None)
        # The alias may have moved again (a rollback) while `new` loaded and warmed.
        try:
            now = await self._registry_call(self._registry.resolve, name, alias)
        except LatentServeError as exc:
            log.warning("alias re-check failed; switching at the next poll", model=name,
                        alias=alias, error=str(exc))
            now = -1
        if now != new:
            log.warning("alias moved again while the new version warmed; not switching",
                        model=name, alias=alias, old=old, loaded=new, now=now)
            served = self._loaded.get((name, new))
            in_use = any(n == name and v == new for (n, _a), v in self._aliases.items())
            if served is not None and not in_use:
                self._retire(served)
            return
        self._aliases[(name, alias)] = new
        self._metrics.alias_swaps.labels(model=name, alias=alias).inc()
        self._metrics.serving_version.labels(model=name, alias=alias).set(new)
        log.info("alias switched", model=name, alias=alias, old=old, new=new)
        still_used = any(n == name and v == old for (n, _a), v in self._aliases.items())
        served = self._loaded.get((name, old))
        if served is not None and not still_used:
            self._retire(served)
        self._publish_loaded(name)

    # ----------------------------------------------------------------- helpers
    async def _registry_call(self, fn: Callable[..., T], *args: object) -> T:
        try:
            result = await asyncio.to_thread(fn, *args)
        except Unavailable:
            self._metrics.registry_errors.inc()
            self._metrics.registry_up.set(0)
            raise
        self._metrics.registry_up.set(1)
        return result

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
