"""The batcher's background lane: background work gets a capped share, interactive goes first."""

from __future__ import annotations

import asyncio

from latentserve.core.arrays import Arrays
from latentserve.service.backends.batching import AdaptiveBatcher, background, background_cap
from tests.service.test_batching import AsyncGatedModel, async_batcher, rows


async def _submit_background(batcher: AdaptiveBatcher, inputs: Arrays) -> Arrays:
    with background():
        return await batcher.submit(inputs)


async def test_interactive_rows_go_first_and_background_is_capped() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)
    assert batcher.background_cap == background_cap(8) == 2
    first = asyncio.create_task(batcher.submit(rows(0)))  # occupies the only slot
    await model.calls.acquire()
    lane = [asyncio.create_task(_submit_background(batcher, rows(100 + i, 200 + i)))
            for i in range(3)]
    await asyncio.sleep(0)
    interactive = asyncio.create_task(batcher.submit(rows(1, 2, 3)))
    await asyncio.sleep(0)
    assert batcher.background_rows == 6
    model.gate.set()
    await asyncio.gather(first, interactive, *lane)
    # the interactive request queued last still rides the next batch, first; each batch takes
    # at most the background cap (2 rows) of the lane
    assert model.batches[1] == [1, 2, 3, 100, 200]
    assert model.batches[2:] == [[101, 201], [102, 202]]
    assert batcher.background_rows == 0
    await batcher.stop()


async def test_background_alone_keeps_half_the_slots_free() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model, max_batch_size=4, max_inflight=4)
    lane = [asyncio.create_task(_submit_background(batcher, rows(float(i)))) for i in range(6)]
    for _ in range(2):
        await model.calls.acquire()
    await asyncio.sleep(0)
    assert model.running == 2  # 4 slots: background batches alone take at most 2
    interactive = asyncio.create_task(batcher.submit(rows(9)))
    await model.calls.acquire()
    assert model.running == 3  # a free slot serves the interactive request at once
    model.gate.set()
    await asyncio.gather(interactive, *lane)
    await batcher.stop()


async def test_background_request_over_the_cap_is_split() -> None:
    model = AsyncGatedModel(gated=False)
    batcher = async_batcher(model)
    out = await _submit_background(batcher, rows(1, 2, 3, 4, 5))
    assert out["y"][:, 0].tolist() == [2, 4, 6, 8, 10]
    assert model.batches == [[1, 2], [3, 4], [5]]
    await batcher.stop()
