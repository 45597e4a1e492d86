"""Leases on Triton models, so replicas sharing one Triton never unload a version another serves.

With `LATENTSERVE_TRITON_MODEL_CONTROL=explicit` every replica (a service process; each worker
is one) loads the Triton models of the versions it serves. Before loading a version a replica
writes a lease on it, a tag on the version in the shared MLflow registry::

    latentserve.triton.lease.<replica id> = <expiry, unix seconds>

renewed every registry_poll_s for triton_lease_ttl_s. When the replica stops serving the version
it deletes its lease and unloads the models only if no other replica's lease is live and Triton
shows no inference since it stopped (`last_inference` in the model statistics); otherwise the
version stays *pending* and is checked again at each renewal, so a crashed replica's lease
holds the models only until it expires.

A load and an unload of the same version by two replicas are ordered by a second tag: the
unloading replica first writes `latentserve.triton.unloading.<replica id>`, then reads the
leases; a loading replica first writes its lease, then waits while any other replica's unloading
mark is live. Each writes before it reads, so at least one of them sees the other: either the
unloader keeps the models, or the loader's lease is in place only after that unload finished;
the loader checks its models once its lease is in place and loads them again if they are gone
(TritonBackend loads while the lease is written, so the registry adds nothing to a load).

If the registry cannot be reached, nothing is unloaded (the version stays pending) and loads go
ahead (the lease is written at the next renewal). deploy/README.md lists the failure modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tritonclient.utils import InferenceServerException

from latentserve.core.errors import LatentServeError
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.backends.triton import HEALTH_TIMEOUT_S, shared_client
from latentserve.service.logs import get_logger
from latentserve.service.settings import Settings

log = get_logger(__name__)
LEASE_TAG = "latentserve.triton.lease."
UNLOADING_TAG = "latentserve.triton.unloading."
MARK_POLL_S = 0.1
"""How often a loading replica re-reads another replica's unloading mark."""
CLOCK_SLACK_MS = 1000
"""Triton's last_inference (its clock, ms) may trail this replica's own last request by this
much before it counts as another client's inference."""

Key = tuple[str, int]
T = TypeVar("T")


def replica_name(settings: Settings) -> str:
    """This replica's id in lease tags: replica_id, or <hostname>-<pid> (tag-safe)."""
    raw = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def live_others(tags: dict[str, str], prefix: str, me: str, now: float) -> list[str]:
    """Replica ids other than `me` whose `prefix` tag has not expired at `now`."""
    live = []
    for key, value in tags.items():
        if not key.startswith(prefix) or key[len(prefix):] == me:
            continue
        try:
            expiry = float(value)
        except ValueError:
            continue
        if expiry > now:
            live.append(key[len(prefix):])
    return live


@dataclass
class _Pending:
    """A version this replica no longer serves whose models are still loaded on Triton."""

    models: list[str]
    seen_inference_ms: int | None
    """Triton's last_inference of the version at the previous look (None: not looked yet)."""


class TritonLeases:
    """One replica's leases on versions it loaded on a shared Triton (see the module docstring)."""

    def __init__(self, settings: Settings, registry: RegistryClient) -> None:
        self.settings = settings
        self.registry = registry
        self.replica = replica_name(settings)
        self._held: set[Key] = set()
        self._pending: dict[Key, _Pending] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._renewing: dict[Key, asyncio.Task[None]] = {}
        """The lease write the renewer has in flight for a version."""
        self._renewer: asyncio.Task[None] | None = None

    @property
    def lease_key(self) -> str:
        return LEASE_TAG + self.replica

    @property
    def unloading_key(self) -> str:
        return UNLOADING_TAG + self.replica

    def held(self) -> list[Key]:
        """Versions this replica holds a lease on."""
        return sorted(self._held)

    def pending(self) -> list[Key]:
        """Versions released here whose models were kept loaded for another replica."""
        return sorted(self._pending)

    # ------------------------------------------------------------------ acquire / release
    async def acquire(self, name: str, version: int) -> None:
        """Before loading (name, version): write this replica's lease, then wait while another
        replica is unloading it (at most triton_load_timeout_s)."""
        key = (name, version)
        async with self._lock(key):
            self._pending.pop(key, None)
            self._held.add(key)
            self._ensure_renewer()
            try:
                await self._write(name, version, self.lease_key, self.settings.triton_lease_ttl_s)
                await self._wait_unloading_done(name, version)
            except LatentServeError as exc:  # registry down: load anyway, renewals retry
                log.warning("triton lease not written; loading anyway", model=name,
                            version=version, error=str(exc))

    async def release(self, name: str, version: int, models: list[str]) -> None:
        """After this replica stopped serving (name, version): drop its lease and unload
        `models` from Triton unless another replica still uses them (then keep them pending)."""
        key = (name, version)
        async with self._lock(key):
            self._held.discard(key)
            renewing = self._renewing.get(key)
            if renewing is not None:  # let a renewal already writing the lease land first
                await asyncio.wait([renewing])
            self._pending[key] = _Pending(models, None)
            released_ms = int(time.time() * 1000)
            try:
                await self.registry_call(self.registry.delete_version_tag, name, version,
                                         self.lease_key)
                await self._try_unload(key, released_ms)
            except LatentServeError as exc:
                log.warning("registry unreachable; triton models kept loaded", model=name,
                            version=version, error=str(exc))

    async def close(self) -> None:
        """Stop renewing; one last attempt to unload what is pending."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(BaseException):
                await self._renewer
            self._renewer = None
        await self._check_pending()

    # ------------------------------------------------------------------ internals
    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        """Renew held leases and re-check pending versions every registry_poll_s."""
        period = min(self.settings.registry_poll_s, self.settings.triton_lease_ttl_s / 3)
        while True:
            await asyncio.sleep(period)
            await self.renew_held()
            try:
                await self._check_pending()
            except Exception as exc:  # keep renewing whatever a check does
                log.exception("triton pending unload check failed", error=str(exc))

    async def renew_held(self) -> None:
        """Renew the lease of every version still held, one write at a time. Without the
        version's lock (an acquire may wait long on another replica's unloading mark): a
        release awaits the write in flight before it deletes the tag for good."""
        for key in list(self._held):
            if key not in self._held:  # released meanwhile: never write the tag back
                continue
            write = asyncio.get_running_loop().create_task(self._renew(key))
            self._renewing[key] = write
            write.add_done_callback(functools.partial(self._forget_renewal, key))
            await asyncio.wait([write])

    def _forget_renewal(self, key: Key, done: asyncio.Task[None]) -> None:
        if self._renewing.get(key) is done:
            del self._renewing[key]

    async def _renew(self, key: Key) -> None:
        name, version = key
        try:
            await self._write(name, version, self.lease_key, self.settings.triton_lease_ttl_s)
        except LatentServeError as exc:
            log.warning("triton lease renewal failed", model=name, version=version,
                        error=str(exc))

    async def _check_pending(self) -> None:
        for key in list(self._pending):
            async with self._lock(key):
                if key not in self._pending:
                    continue
                try:
                    await self._try_unload(key, None)
                except LatentServeError as exc:
                    log.warning("registry unreachable; triton models kept loaded",
                                model=key[0], version=key[1], error=str(exc))

    async def _try_unload(self, key: Key, released_ms: int | None) -> None:
        """Unload a pending version unless another replica's lease is live or Triton saw an
        inference since this replica stopped (or since the previous look). Holds the key's
        lock; registry errors propagate (the version stays pending)."""
        name, version = key
        pending = self._pending[key]
        await self._write(name, version, self.unloading_key, self.settings.triton_load_timeout_s)
        try:
            tags = await self.registry_call(self.registry.version_tags, name, version)
            others = live_others(tags, LEASE_TAG, self.replica, time.time())
            if others:
                log.info("triton models kept loaded: other replicas serve them", model=name,
                         version=version, replicas=others)
                return
            last = await self._last_inference_ms(pending.models)
            if last is None:  # gone already (unloaded by another replica, or Triton restarted)
                del self._pending[key]
                return
            if pending.seen_inference_ms is not None:  # no inference since the previous look
                quiet = last <= pending.seen_inference_ms
            elif released_ms is not None:  # none since this replica's own last request
                quiet = last <= released_ms + CLOCK_SLACK_MS
            else:  # first look without a release time: compare at the next one
                quiet = False
            if not quiet:
                pending.seen_inference_ms = last
                log.info("triton models kept loaded: still receiving inferences", model=name,
                         version=version)
                return
            await self._unload(pending.models)
            del self._pending[key]
            log.info("triton models unloaded", model=name, version=version,
                     models=pending.models)
        finally:
            with contextlib.suppress(LatentServeError):
                await self.registry_call(self.registry.delete_version_tag, name, version,
                                         self.unloading_key)

    async def _wait_unloading_done(self, name: str, version: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.triton_load_timeout_s
        while True:
            tags = await self.registry_call(self.registry.version_tags, name, version)
            unloading = live_others(tags, UNLOADING_TAG, self.replica, time.time())
            if not unloading or loop.time() >= deadline:
                return
            await asyncio.sleep(MARK_POLL_S)

    async def _last_inference_ms(self, models: list[str]) -> int | None:
        """Latest last_inference over `models` (0: never used); None if none is ready."""
        client = shared_client(self.settings.triton_url)
        latest: int | None = None
        for model in models:
            try:
                if not await client.is_model_ready(model, client_timeout=HEALTH_TIMEOUT_S):
                    continue
                stats = await client.get_inference_statistics(
                    model, as_json=True, client_timeout=HEALTH_TIMEOUT_S)
            except InferenceServerException:
                continue
            for entry in stats.get("model_stats", []):
                value = int(entry.get("last_inference", 0) or 0)
                latest = value if latest is None else max(latest, value)
        return latest

    async def _unload(self, models: list[str]) -> None:
        client = shared_client(self.settings.triton_url)
        for model in models:
            try:
                await client.unload_model(model, client_timeout=HEALTH_TIMEOUT_S)
            except InferenceServerException as exc:  # server gone: nothing left to unload
                log.warning("triton unload failed", model=model, error=exc.message())

    async def _write(self, name: str, version: int, key: str, ttl_s: float) -> None:
        await self.registry_call(self.registry.set_version_tag, name, version, key,
                                 f"{time.time() + ttl_s:.3f}")

    @staticmethod
    async def registry_call(fn: Callable[..., T], *args: object) -> T:
        """A blocking registry call off the event loop."""
        return await asyncio.to_thread(fn, *args)
