"""System shared-memory output regions for the Triton backend (Triton on the same host only).

With `LATENTSERVE_TRITON_SHARED_MEMORY=true` the server writes a request's outputs straight into
a region the service registered, instead of sending them back over gRPC — measured about 2× faster
for a 3 MiB batch on the local CPU server. One region serves one in-flight request; the pool grows
on demand up to `max_regions` and the caller falls back to plain gRPC beyond that. Example::

    pool = OutputShmPool(byte_size=max_batch * item_bytes, prefix="tiny_v1_dec")
    region = await pool.acquire(client)          # None: use plain gRPC this time
    ...                                          # outputs[i].set_shared_memory(region.name, ...)
    images = region.read(offset=0, shape=(n, 1, 8, 8))
    pool.release(region)
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass, field
from multiprocessing import shared_memory

import numpy as np
import numpy.typing as npt
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

_counter = itertools.count()


@dataclass
class ShmRegion:
    """One system shared-memory segment registered with Triton under `name`."""

    name: str
    segment: shared_memory.SharedMemory
    byte_size: int
    registered: bool = field(default=False)

    @property
    def key(self) -> str:
        """The shm_open key Triton maps."""
        return f"/{self.segment.name}"

    def read(self, offset: int, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """A float32 copy of `shape` starting `offset` bytes into the region."""
        buffer = self.segment.buf
        if buffer is None:
            raise RuntimeError(f"shared memory region {self.name} is closed")
        view = np.frombuffer(buffer, np.float32, count=int(np.prod(shape)), offset=offset)
        out = view.reshape(shape).copy()
        del view
        return out


class OutputShmPool:
    """Regions of one size for one Triton model, registered lazily and reused."""

    def __init__(self, byte_size: int, *, prefix: str, max_regions: int = 32) -> None:
        self.byte_size = byte_size
        self.prefix = prefix
        self.max_regions = max_regions
        self._free: list[ShmRegion] = []
        self._all: list[ShmRegion] = []

    async def acquire(self, client: InferenceServerClient) -> ShmRegion | None:
        """A registered free region, or None when the pool is at `max_regions`."""
        region = self._free.pop() if self._free else self._create()
        if region is None:
            return None
        if not region.registered:
            try:
                await client.register_system_shared_memory(
                    region.name, region.key, region.byte_size
                )
            except InferenceServerException as exc:
                if "already" not in str(exc.message()):  # still registered from before: fine
                    self._free.append(region)
                    raise
            region.registered = True
        return region

    def release(self, region: ShmRegion) -> None:
        self._free.append(region)

    def forget_registrations(self) -> None:
        """The server restarted: every region must be registered again before use."""
        for region in self._all:
            region.registered = False

    async def close(self, client: InferenceServerClient | None) -> None:
        """Unregister (best effort) and remove every region."""
        for region in self._all:
            if client is not None and region.registered:
                with contextlib.suppress(InferenceServerException):
                    await client.unregister_system_shared_memory(region.name)
            region.segment.close()
            with contextlib.suppress(FileNotFoundError):
                region.segment.unlink()
        self._all.clear()
        self._free.clear()

    def _create(self) -> ShmRegion | None:
        if len(self._all) >= self.max_regions:
            return None
        name = f"latentserve_{os.getpid()}_{self.prefix}_{next(_counter)}"
        segment = shared_memory.SharedMemory(name=name, create=True, size=self.byte_size)
        region = ShmRegion(name, segment, self.byte_size)
        self._all.append(region)
        return region
