"""The adaptive batcher: idle → run at once; busy → next batch takes what queued; isolation.
Also the ONNX Runtime sessions it feeds (thread options)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from latentserve.core.arrays import Arrays
from latentserve.core.errors import ResourceExhausted
from latentserve.registry.bundle import Bundle
from latentserve.service.backends.batching import AdaptiveBatcher
from latentserve.service.backends.embedded import make_session


class GatedModel:
    """A 'model' (x → 2x) whose calls block until released, recording batch sizes."""

    def __init__(self, *, gated: bool = False) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        if not gated:
            self.gate.set()

    def __call__(self, inputs: Arrays) -> Arrays:
        x = inputs["x"]
        self.batches.append(len(x))
        self.entered.release()
        self.gate.wait(30)
        if (x < 0).any():
            raise RuntimeError("negative input")
        return {"y": x * 2}


def rows(*values: float) -> Arrays:
    return {"x": np.asarray(values, dtype=np.float32)[:, None]}


async def entered(model: GatedModel) -> None:
    assert await asyncio.to_thread(model.entered.acquire, True, 30)


async def test_lone_request_runs_alone_and_at_once() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_queue_items=64)
    batcher.start()
    out = await batcher.submit(rows(1.0, 2.0))
    np.testing.assert_array_equal(out["y"][:, 0], [2.0, 4.0])
    assert model.batches == [2]
    await batcher.stop()


async def test_requests_queued_while_busy_form_one_batch_in_order() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_queue_items=64)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(0.5)))
    await entered(model)                      # the first batch is running (blocked)
    later = [asyncio.ensure_future(batcher.submit(rows(float(i), float(i) + 0.25)))
             for i in range(1, 4)]
    await asyncio.sleep(0)                    # let the submits enqueue
    assert batcher.queued_rows == 6
    model.gate.set()
    results = await asyncio.gather(first, *later)
    assert model.batches == [1, 6]
    for i, out in enumerate(results[1:], start=1):
        np.testing.assert_array_equal(out["y"][:, 0], [2 * i, 2 * i + 0.5])
    await batcher.stop()


async def test_batches_never_exceed_max_and_keep_whole_requests() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_queue_items=64)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(0)))
    await entered(model)
    queued = [asyncio.ensure_future(batcher.submit(rows(*[1.0] * n))) for n in (3, 2, 2, 4)]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(first, *queued)
    assert model.batches == [1, 3, 4, 4]
    await batcher.stop()


async def test_a_failing_request_fails_alone() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_queue_items=64)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await entered(model)
    good1 = asyncio.ensure_future(batcher.submit(rows(1)))
    bad = asyncio.ensure_future(batcher.submit(rows(-1)))
    good2 = asyncio.ensure_future(batcher.submit(rows(3)))
    await asyncio.sleep(0)
    model.gate.set()
    assert (await good1)["y"][0, 0] == 2
    assert (await good2)["y"][0, 0] == 6
    with pytest.raises(RuntimeError, match="negative"):
        await bad
    await first
    assert model.batches[:2] == [1, 3]       # tried together, then one by one
    await batcher.stop()


async def test_full_queue_answers_resource_exhausted() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_queue_items=4)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await entered(model)
    waiting = asyncio.ensure_future(batcher.submit(rows(1, 1, 1, 1)))
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted, match="full"):
        await batcher.submit(rows(1))
    model.gate.set()
    await asyncio.gather(first, waiting)
    await batcher.stop()


async def test_cancelled_requests_are_skipped() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_queue_items=64)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await entered(model)
    gone = asyncio.ensure_future(batcher.submit(rows(1, 1, 1)))
    kept = asyncio.ensure_future(batcher.submit(rows(2)))
    await asyncio.sleep(0)
    gone.cancel()
    model.gate.set()
    await asyncio.gather(first, kept)
    assert model.batches == [1, 1]
    await batcher.stop()


async def test_opt_in_delay_stops_waiting_once_the_batch_is_full() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_queue_items=64, max_delay_s=60.0)
    batcher.start()
    outs = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(rows(float(i))) for i in range(4))), 30)
    assert model.batches == [4]
    assert [o["y"][0, 0] for o in outs] == [0, 2, 4, 6]
    await batcher.stop()


def test_oversized_request_is_refused() -> None:
    batcher = AdaptiveBatcher(GatedModel(), max_batch_size=2, max_queue_items=64)
    with pytest.raises(ValueError, match="max_batch_size"):
        asyncio.run(batcher.submit(rows(1, 2, 3)))


@pytest.mark.parametrize("spinning", [False, True])
def test_sessions_spin_only_when_asked(tiny_bundle: Bundle, spinning: bool) -> None:
    session = make_session(tiny_bundle.decoder_path, 1, spinning=spinning)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == (
        "1" if spinning else "0")
    assert options.intra_op_num_threads == 1
