"""What a request holds while it runs: a loaded version (`ServedVersion`) and how it was chosen.

The request path (servicer, generation, responses, response cache) imports only this module;
the loading and swapping machinery lives in the rest of `service.models`. Example::

    async with manager.lease("sprites-vae", alias="production") as lease:
        images = await lease.backend.decode(z)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.base import Backend

Key = tuple[str, int]
"""(model name, version)."""


@dataclass(eq=False)
class ServedVersion:
    """A loaded model version and the requests using it."""

    name: str
    version: int
    bundle: Bundle
    backend: Backend
    identity: str = ""
    """The registry's identity of the version (creation time and content hash): a version
    number alone repeats when a model is deleted and registered again."""
    inflight: int = 0
    retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> Key:
        return self.name, self.version


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
