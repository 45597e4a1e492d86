"""The Triton backend: a bundle version served by a Triton Inference Server over gRPC.

Model names are `<name>__v<version>` (+ `__mapping`, `__encoder`). With
`LATENTSERVE_TRITON_MODEL_CONTROL=explicit` the backend loads them itself (config JSON + file
overrides, flavour from `LATENTSERVE_TRITON_FLAVOR`) and unloads them in `unload()`; with `none`
they are expected to be preloaded and the backend only checks that they are ready. Concurrent
requests merge in the service's batcher (one per component, up to
`LATENTSERVE_TRITON_MAX_INFLIGHT` batches in flight, fewer while Triton's statistics show a
queue: `triton_inflight`), and Triton's dynamic batcher merges those batches again. If the
server restarts and forgets the models, the next request reloads them.
Example::

    backend = TritonBackend(bundle, settings, version=3)
    await backend.load()
    with request_deadline(2.0):  # from latentserve.service.deadline
        images = await backend.decode(z)
    await backend.unload()
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from latentserve.core.arrays import Arrays
from latentserve.core.errors import (
    BackendError,
    DeadlineExceeded,
    LatentServeError,
    Unavailable,
)
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.triton.export import (
    component_io,
    components,
    triton_load_files,
    triton_model_config,
    triton_model_name,
)
from latentserve.service.backends.base import Backend, Component
from latentserve.service.backends.batching import AsyncRunBatch
from latentserve.service.backends.triton_inflight import InflightTuner
from latentserve.service.backends.triton_shm import OutputShmPool
from latentserve.service.deadline import remaining_deadline_s
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings
from latentserve.service.tracing import triton_headers

if TYPE_CHECKING:
    from latentserve.service.backends.triton_leases import TritonLeases

log = get_logger(__name__)
T = TypeVar("T")

MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_ARGS: list[tuple[str, Any]] = [
    # Passing channel args replaces tritonclient's defaults: both lengths must be set here.
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Reconnect within ~1 s after a server restart instead of gRPC's default (up to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
HEALTH_TIMEOUT_S = 2.0

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, InferenceServerClient]]
_clients = weakref.WeakKeyDictionary()


def shared_client(url: str) -> InferenceServerClient:
    """The event loop's one gRPC client for `url` (created on first use)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(url)
    if client is None:
        client = per_loop[url] = InferenceServerClient(url, channel_args=CHANNEL_ARGS)
    return client


async def close_shared_clients() -> None:
    """Close the running loop's clients (at service shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def remaining_s(default_s: float) -> float:
    """Seconds left of the current request's deadline (`default_s` when none is set)."""
    left = remaining_deadline_s()
    return default_s if left is None else left


def map_triton_error(exc: InferenceServerException, what: str) -> LatentServeError:
    """Our error for a tritonclient exception.

    DEADLINE_EXCEEDED → DeadlineExceeded; UNAVAILABLE (server down, model not ready) and
    NOT_FOUND (model not loaded) → Unavailable; anything else (the model failed) → BackendError,
    with the server's message logged, not returned.
    """
    status = str(exc.status() or "")
    message = f"{what}: {exc.message()}"
    if status.endswith("DEADLINE_EXCEEDED"):
        return DeadlineExceeded(f"{what}: deadline exceeded waiting for Triton")
    if status.endswith(("UNAVAILABLE", "NOT_FOUND")):
        return Unavailable(f"{what}: Triton unavailable or model not loaded")
    log.error("triton request failed", what=what, status=status, error=message)
    return BackendError(f"{what}: Triton failed ({status or 'no status'})")


class TritonBackend(Backend):
    """One bundle version on a Triton server (see the module docstring)."""

    kind = "triton"

    def __init__(
        self, bundle: Bundle, settings: Settings, version: int,
        leases: TritonLeases | None = None, *, metrics: ServiceMetrics | None = None,
    ) -> None:
        """`leases`: in explicit mode, coordinate loads/unloads with other replicas sharing
        the server (without: unload() unloads the models outright)."""
        super().__init__(bundle, metrics=metrics)
        self.settings = settings
        self.version = version
        self._leases = leases if settings.triton_model_control == "explicit" else None
        self.model_names: dict[Component, str] = {
            c: triton_model_name(self.spec.name, version, c) for c in components(bundle)
        }
        self._io = {c: component_io(self.spec, c) for c in self.model_names}
        self._explicit = settings.triton_model_control == "explicit"
        self._stale = False  # the server lost our models (restart): reload on next use
        self._lock = asyncio.Lock()
        self._shm: dict[Component, OutputShmPool] = {}
        self._inflight: dict[Component, InflightTuner] = {}
        if settings.triton_shared_memory:
            for c in self.model_names:
                size = sum(_max_bytes(self.spec.max_batch_size, t.dims) for t in self._io[c][1])
                self._shm[c] = OutputShmPool(size, prefix=f"{self.spec.name}_v{version}_{c}")

    @property
    def inflight_tuners(self) -> dict[Component, InflightTuner]:
        """The in-flight tuner of each component (empty when tuning is off)."""
        return dict(self._inflight)

    @property
    def client(self) -> InferenceServerClient:
        return shared_client(self.settings.triton_url)

    async def _call(self, call: Awaitable[T], what: str) -> T:
        try:
            return await call
        except InferenceServerException as exc:
            raise map_triton_error(exc, what) from None

    async def load(self) -> None:
        async with self._lock:
            try:
                if self._leases is not None:
                    await self._load_leased(self._leases)
                elif self._explicit:
                    await self._load_models(self.settings.triton_load_timeout_s)
                await self._check_models_ready()
            except BaseException:
                if self._leases is not None:
                    await self._leases.release(
                        self.spec.name, self.version, list(self.model_names.values()))
                raise
            self._open_batchers({c: self._runner(c) for c in self.model_names}, self.settings,
                                max_inflight=self.settings.triton_max_inflight,
                                limits=self._tuners())
            self._ready = True
            self._stale = False
        log.info("triton models ready", models=list(self.model_names.values()))

    def _tuners(self) -> dict[Component, InflightTuner]:
        """One in-flight tuner per component (none when tuning is off)."""
        if not self.settings.triton_inflight_tuning:
            return {}
        for tuner in self._inflight.values():
            tuner.close()
        self._inflight = {
            c: InflightTuner(lambda: self.client, name,
                             max_inflight=self.settings.triton_max_inflight,
                             max_batch_size=self.spec.max_batch_size)
            for c, name in self.model_names.items()}
        return self._inflight

    async def _load_models(self, timeout_s: float) -> None:
        flavor = self.settings.triton_flavor

        async def load_one(component: Component, name: str) -> None:
            config = triton_model_config(
                self.bundle, component, flavor, name=name,
                max_queue_delay_us=self.settings.triton_max_queue_delay_us,
            )  # fmt: skip
            files = await asyncio.to_thread(triton_load_files, self.bundle, component, flavor)
            await self._call(
                self.client.load_model(name, config=config, files=files, client_timeout=timeout_s),
                f"load {name}",
            )

        await asyncio.gather(*(load_one(c, n) for c, n in self.model_names.items()))

    async def _load_leased(self, leases: TritonLeases) -> None:
        """Load under a lease (explicit mode, replicas sharing the server; see triton_leases).

        Models another replica has ready are not loaded again (that would reload them under its
        traffic). Otherwise the lease is written while the models load: an unload by another
        replica that finished before the lease was seen may have removed the fresh models, so
        they are checked once both are done and loaded again if gone (safe then: the lease is
        visible to every later unloader).
        """
        timeout = self.settings.triton_load_timeout_s
        name, version = self.spec.name, self.version
        if await self._shared_models_ready():
            await leases.acquire(name, version)
        else:
            await asyncio.gather(self._load_models(timeout), leases.acquire(name, version))
        if not await self._shared_models_ready():
            await self._load_models(timeout)

    async def _shared_models_ready(self) -> bool:
        """Whether every model of this version is ready on the server (loaded by anyone)."""
        try:
            await self._check_models_ready()
        except (Unavailable, BackendError):
            return False
        return True

    async def _check_models_ready(self, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        for name in self.model_names.values():
            ready = await self._call(
                self.client.is_model_ready(name, client_timeout=timeout_s), f"ready {name}"
            )
            if not ready:
                raise Unavailable(f"{name}: model not ready on Triton")

    async def unload(self) -> None:
        self._ready = False
        await self._close_batchers()
        for tuner in self._inflight.values():
            tuner.close()
        async with self._lock:
            self._ready = False
            for pool in self._shm.values():
                await pool.close(self.client)
            if not self._explicit:
                return
            if self._leases is not None:  # unloads only once no other replica serves it
                await self._leases.release(
                    self.spec.name, self.version, list(self.model_names.values()))
                return
            for name in self.model_names.values():
                try:
                    await self.client.unload_model(name, client_timeout=HEALTH_TIMEOUT_S)
                except InferenceServerException as exc:  # server gone: nothing left to unload
                    log.warning("triton unload failed", model=name, error=exc.message())

    async def server_ready(self) -> bool:
        """Whether the Triton server answers and reports ready (for health checks)."""
        try:
            return bool(await self.client.is_server_ready(client_timeout=HEALTH_TIMEOUT_S))
        except InferenceServerException:
            return False

    async def _recover(self, timeout_s: float) -> None:
        """After the server lost our models: reload them (explicit) or re-check readiness."""
        async with self._lock:
            if not self._stale or not self._ready:
                return
            try:
                await self._check_models_ready(min(timeout_s, HEALTH_TIMEOUT_S))
            except Unavailable:
                if not self._explicit:
                    raise
                log.warning("triton lost models; reloading", models=list(self.model_names.values()))
                await self._load_models(timeout_s)
                await self._check_models_ready(min(timeout_s, HEALTH_TIMEOUT_S))
            for pool in self._shm.values():
                pool.forget_registrations()
            self._stale = False

    def _runner(self, component: Component) -> AsyncRunBatch:
        """The batch function of one component (the batcher awaits it on the loop)."""

        async def run(inputs: Arrays) -> Arrays:
            return await self._infer_batch(component, inputs)

        return run

    async def _infer_batch(self, component: Component, inputs: Arrays) -> Arrays:
        """One Triton request for a batch (under the batch's deadline, see the batcher)."""
        name = self.model_names.get(component)
        if name is None:
            raise BackendError(f"{self.spec.name} v{self.version} has no {component}")
        if not self._ready:
            raise Unavailable(f"{name}: not loaded")
        timeout = remaining_s(self.settings.default_deadline_s)
        if timeout <= 0:
            raise DeadlineExceeded(f"{name}: deadline passed before the request was sent")
        if self._stale:
            await self._recover(timeout)
            timeout = remaining_s(self.settings.default_deadline_s)
        request = self._request(name, component, inputs)
        pool = self._shm.get(component)
        try:
            if pool is not None:
                with contextlib.suppress(_ShmUnusable):
                    return await self._send_shm(name, component, request, pool, timeout)
            outputs = [grpcclient.InferRequestedOutput(t.name) for t in self._io[component][1]]
            result = await self.client.infer(
                name, request, outputs=outputs, client_timeout=max(timeout, 1e-3),
                headers=triton_headers(),
            )
        except InferenceServerException as exc:
            error = map_triton_error(exc, name)
            if isinstance(error, Unavailable):
                self._stale = True
            raise error from None
        return {t.name: result.as_numpy(t.name) for t in self._io[component][1]}

    def _request(self, name: str, component: Component, inputs: Arrays) -> list[Any]:
        """tritonclient inputs for one batch (class labels sent as [batch, 1] int64)."""
        request = []
        for tensor in self._io[component][0]:
            if tensor.name not in inputs:
                raise BackendError(f"{name}: input {tensor.name!r} is missing")
            array = np.asarray(inputs[tensor.name])
            if tensor.data_type == "TYPE_INT64":
                array = np.ascontiguousarray(array, dtype=np.int64).reshape(-1, 1)
                kind = "INT64"
            else:
                array = np.ascontiguousarray(array, dtype=np.float32)
                kind = "FP32"
            item = grpcclient.InferInput(tensor.name, list(array.shape), kind)
            item.set_data_from_numpy(array)
            request.append(item)
        return request

    async def _send_shm(
        self,
        name: str,
        component: Component,
        request: list[Any],
        pool: OutputShmPool,
        timeout: float,
    ) -> Arrays:
        """Infer with the outputs written into a shared-memory region; _ShmUnusable: use gRPC."""
        try:
            region = await pool.acquire(self.client)
        except InferenceServerException as exc:
            if not isinstance(map_triton_error(exc, name), BackendError):
                raise  # server down or slow: not a reason to give up shared memory
            log.warning("triton shared memory disabled", model=name, error=exc.message())
            self._shm.clear()
            raise _ShmUnusable from None
        if region is None:
            raise _ShmUnusable
        try:
            outputs, offset = [], 0
            for tensor in self._io[component][1]:
                size = _max_bytes(self.spec.max_batch_size, tensor.dims)
                output = grpcclient.InferRequestedOutput(tensor.name)
                output.set_shared_memory(region.name, size, offset)
                outputs.append((tensor.name, output, offset))
                offset += size
            try:
                result = await self.client.infer(
                    name, request, outputs=[o for _, o, _ in outputs],
                    client_timeout=max(timeout, 1e-3), headers=triton_headers(),
                )  # fmt: skip
            except InferenceServerException as exc:
                if "shared memory" in str(exc.message()):  # server restarted and forgot it
                    pool.forget_registrations()
                    raise _ShmUnusable from None
                raise
            return {
                tensor: region.read(at, tuple(result.get_output(tensor).shape))
                for tensor, _, at in outputs
            }
        finally:
            pool.release(region)


class _ShmUnusable(Exception):
    """This request goes over plain gRPC instead (pool exhausted or region not usable)."""


def _max_bytes(max_batch_size: int, dims: tuple[int, ...]) -> int:
    return 4 * max_batch_size * int(np.prod(dims))
