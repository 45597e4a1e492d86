"""Unknown model, alias and version names answered NOT_FOUND from memory.

Without it every request naming something the registry does not hold asks the registry again
(a thread and a database query each), so a flood of unknown names, repeated or all different,
slows every good request. `UnknownNames` keeps one snapshot of the registry's catalogue (every
model with its versions and aliases, one registry call) for `unknown_name_ttl_s`: a name the
snapshot lacks is NOT_FOUND at once; a name it holds goes on to the registry as before. A
stale snapshot is retaken by one caller while the others wait for it, so a flood costs at most
one registry call per TTL. The alias watcher forgets the snapshot at each poll, and with a
sqlite registry a write (its file times change) retakes it at once. When the registry cannot be
read, nothing is answered from memory. Example::

    unknown = UnknownNames(registry, ttl_s=5.0)
    await unknown.check("tiny", alias="production")   # NotFound if tiny or its alias is unknown
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from latentserve.core.errors import NotFound, Unavailable
from latentserve.core.names import LISTED_NAMES, did_you_mean, shown
from latentserve.registry.store.mlflow_store import ModelRecord, sqlite_path
from latentserve.service.models.registry_access import RegistryAccess

MLFLOW_LATEST = "latest"
"""MLflow's built-in alias (any case): the newest version of every model that has one."""


class UnknownNames:
    """A short-lived snapshot of the registry's names for negative answers."""

    def __init__(self, registry: RegistryAccess, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 stamp: Callable[[], object] = lambda: None) -> None:
        """`stamp`: a cheap token that changes when the registry does (a sqlite registry's
        file times); a snapshot taken under another stamp is retaken at once."""
        self._registry = registry
        self._ttl_s = ttl_s
        self._clock = clock
        self._stamp = stamp
        self._records: dict[str, ModelRecord] | None = None
        self._taken_at = 0.0
        self._taken_stamp: object = None
        self._lock = asyncio.Lock()
        self.snapshots = 0
        """Registry snapshots taken so far (tests, metrics)."""

    def forget(self) -> None:
        """Drop the snapshot (the registry changed): the next check takes a fresh one."""
        self._records = None

    async def check(self, name: str, *, alias: str = "", version: int = 0) -> None:
        """NotFound when the snapshot lacks `name` (or its `alias` / `version`)."""
        if self._ttl_s <= 0:
            return
        records = await self._snapshot()
        if records is None:
            return
        record = records.get(name)
        if record is None:
            raise NotFound(f"unknown model {shown(name)}{did_you_mean(name, records)}")
        if alias and alias not in record.aliases and alias.lower() != MLFLOW_LATEST:
            raise NotFound(f"model {shown(name)} has no alias {shown(alias)}"
                           f"{did_you_mean(alias, record.aliases)}")
        if version and version not in record.versions:
            listed = ", ".join(map(str, record.versions[-LISTED_NAMES:])) or "none"
            raise NotFound(f"model {shown(name)} has no version {version} (versions: "
                           f"{listed})")

    def _fresh(self) -> dict[str, ModelRecord] | None:
        if (self._records is not None and self._clock() - self._taken_at < self._ttl_s
                and self._stamp() == self._taken_stamp):
            return self._records
        return None

    async def _snapshot(self) -> dict[str, ModelRecord] | None:
        records = self._fresh()
        if records is not None:
            return records
        async with self._lock:  # one caller retakes it; the others use its result
            records = self._fresh()
            if records is not None:
                return records
            stamp = self._stamp()
            try:
                listed = await self._registry.list_models()
            except Unavailable:
                return None
            self.snapshots += 1
            self._records = {r.name: r for r in listed}
            self._taken_at, self._taken_stamp = self._clock(), stamp
            return self._records


def sqlite_stamp(registry_uri: str) -> Callable[[], object]:
    """The stamp of a sqlite registry: its database (and write-ahead log) file times; for
    other registries a constant (the TTL alone bounds a snapshot's age)."""
    db = sqlite_path(registry_uri)
    if db is None:
        return lambda: None
    files = [db, db.with_name(db.name + "-wal")]

    def stamp() -> object:
        times = []
        for path in files:
            try:
                times.append(path.stat().st_mtime_ns)
            except OSError:
                times.append(0)
        return tuple(times)

    return stamp
