"""TritonBackend when its server dies or freezes: fast UNAVAILABLE / DEADLINE_EXCEEDED, recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from latentserve.core.errors import DeadlineExceeded, Unavailable
from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.triton import TritonBackend
from latentserve.service.deadline import request_deadline
from latentserve.service.devtools.triton_local import TritonProcess
from latentserve.service.settings import Settings
from tests.fixtures.tiny import build_tiny_bundle

pytestmark = [pytest.mark.triton, pytest.mark.asyncio(loop_scope="session")]
Z = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_tiny_bundle(
        tmp_path_factory.mktemp("chaos") / "b", name="tchaos", with_encoder=False
    )


async def decode_when_back(backend: TritonBackend, within_s: float) -> tuple[np.ndarray, int]:
    """Retry like a client would (UNAVAILABLE → back off) until the backend answers again."""
    deadline = time.monotonic() + within_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return await backend.decode(Z), attempts
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("shared_memory", [False, True], ids=["grpc", "shm"])
async def test_killed_server_fails_fast_and_recovers_after_restart(
    bundle: Bundle,
    fresh_triton: TritonProcess,
    triton_settings_for: Callable[..., Settings],
    shared_memory: bool,
) -> None:
    settings = triton_settings_for(fresh_triton, triton_shared_memory=shared_memory)
    backend = TritonBackend(bundle, settings, 1)
    await backend.load()
    expected = await backend.decode(Z)

    fresh_triton.kill()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await backend.decode(Z)
    with pytest.raises(Unavailable):  # still down: the reload attempt fails fast too
        await backend.decode(Z)
    assert time.monotonic() - started < 1.0
    assert not await backend.server_ready()

    fresh_triton.restart()  # same ports, empty server: the backend must reload its model
    images, _ = await decode_when_back(backend, within_s=20.0)
    np.testing.assert_array_equal(images, expected)
    assert await backend.server_ready()
    await backend.unload()


async def test_frozen_server_hits_the_deadline_then_recovers(
    bundle: Bundle, fresh_triton: TritonProcess, triton_settings_for: Callable[..., Settings]
) -> None:
    backend = TritonBackend(bundle, triton_settings_for(fresh_triton), 1)
    await backend.load()
    expected = await backend.decode(Z)

    fresh_triton.pause()
    try:
        started = time.monotonic()
        with request_deadline(0.5), pytest.raises(DeadlineExceeded):
            await backend.decode(Z)
        assert 0.45 < time.monotonic() - started < 1.5
    finally:
        fresh_triton.resume()
    np.testing.assert_array_equal(await backend.decode(Z), expected)
    await backend.unload()
