"""TritonLeases against a real sqlite MLflow registry: a release never leaves a lease behind,
even when the renewer's write of that lease is in flight as the release starts."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle
from latentserve.service.backends.triton_leases import LEASE_TAG, UNLOADING_TAG, TritonLeases
from latentserve.service.settings import Settings
from tests.fixtures.tiny import build_tiny_bundle


class GatedRegistry(RegistryClient):
    """A registry whose lease writes wait for `gate` while it is closed, and which records a
    delete that ran while such a write was still waiting."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()
        self.deleted_during_write = False
        self.read_mark = threading.Event()

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        if key.startswith(LEASE_TAG) and not self.gate.is_set():
            self.writing.set()
            self.gate.wait()
        super().set_version_tag(name, version, key, value)

    def version_tags(self, name: str, version: int) -> dict[str, str]:
        tags = super().version_tags(name, version)
        if any(key.startswith(UNLOADING_TAG) for key in tags):
            self.read_mark.set()
        return tags

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        if key.startswith(LEASE_TAG) and self.writing.is_set() and not self.gate.is_set():
            self.deleted_during_write = True
        super().delete_version_tag(name, version, key)


async def test_a_release_waits_for_the_renewal_in_flight(empty_registry_uri: str,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """The window: an acquire holds the version's lock (waiting on another replica's unloading
    mark), so the renewer writes the lease beside it; the acquire ends and a release follows
    while that write is still on its way."""
    register_bundle(empty_registry_uri, build_tiny_bundle(tmp_path / "b").root, "leased")
    registry = GatedRegistry(empty_registry_uri)
    leases = TritonLeases(Settings(replica_id="r1", registry_uri=empty_registry_uri), registry)
    await leases.acquire("leased", 1)
    assert LEASE_TAG + "r1" in registry.version_tags("leased", 1)

    mark = UNLOADING_TAG + "r2"
    registry.set_version_tag("leased", 1, mark, f"{time.time() + 600:.3f}")
    reacquire = asyncio.create_task(leases.acquire("leased", 1))  # waits on r2's mark
    await asyncio.to_thread(registry.read_mark.wait)
    registry.gate.clear()  # the renewer's lease write now waits
    renewal = asyncio.create_task(leases.renew_held())
    await asyncio.to_thread(registry.writing.wait)
    registry.delete_version_tag("leased", 1, mark)
    await reacquire

    release = asyncio.create_task(leases.release("leased", 1, []))
    for _ in range(20):  # let the release run up to where it waits: it must not finish
        await asyncio.sleep(0)
    assert not release.done()
    registry.gate.set()
    await asyncio.gather(renewal, release)

    assert not registry.deleted_during_write
    assert LEASE_TAG + "r1" not in registry.version_tags("leased", 1)
    assert leases.held() == [] and leases.pending() == []
    await leases.close()
