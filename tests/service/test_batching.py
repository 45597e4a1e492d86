"""The adaptive batcher: idle → run at once; busy → next batch takes what queued; isolation.
Also the ONNX Runtime sessions it feeds (thread options)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from latentserve.core.arrays import Arrays
from latentserve.core.errors import BackendError, ResourceExhausted, Unavailable
from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.batching import AdaptiveBatcher
from latentserve.service.backends.embedded import EmbeddedBackend, make_session
from latentserve.service.deadline import deadline_at, request_deadline
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings


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


# ------------------------------------------------------------------ async runs, in-flight slots
class AsyncGatedModel:
    """An async 'model' (x → 2x) whose calls wait for a gate, recording batches and overlap."""

    def __init__(self, *, gated: bool = True) -> None:
        self.batches: list[list[float]] = []
        self.deadlines: list[float | None] = []
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0
        self.calls = asyncio.Semaphore(0)
        if not gated:
            self.gate.set()

    async def __call__(self, inputs: Arrays) -> Arrays:
        x = inputs["x"]
        self.batches.append([float(v) for v in x[:, 0]])
        self.deadlines.append(deadline_at())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.calls.release()
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if (x < 0).any():
            raise BackendError("negative input")
        if (x > 1000).any():
            raise Unavailable("backend down")
        return {"y": x * 2}


def async_batcher(model: AsyncGatedModel, **kwargs: object) -> AdaptiveBatcher:
    async def run(inputs: Arrays) -> Arrays:
        return await model(inputs)

    options: dict[str, object] = {"max_batch_size": 8, "max_queue_items": 64}
    options.update(kwargs)
    batcher = AdaptiveBatcher(run, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher


async def test_async_run_merges_queued_requests_in_order() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)
    first = asyncio.ensure_future(batcher.submit(rows(0.5)))
    await model.calls.acquire()                 # the lone first request runs at once
    later = [asyncio.ensure_future(batcher.submit(rows(float(i), float(i) + 0.25)))
             for i in range(1, 4)]
    await asyncio.sleep(0)
    model.gate.set()
    results = await asyncio.gather(first, *later)
    assert model.batches == [[0.5], [1, 1.25, 2, 2.25, 3, 3.25]]
    for i, out in enumerate(results[1:], start=1):
        np.testing.assert_array_equal(out["y"][:, 0], [2 * i, 2 * i + 0.5])
    await batcher.stop()


@pytest.mark.parametrize("max_inflight", [1, 2, 4])
async def test_in_flight_batches_never_exceed_the_limit(max_inflight: int) -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model, max_batch_size=4, max_inflight=max_inflight)
    submitted = [asyncio.ensure_future(batcher.submit(rows(float(i)))) for i in range(20)]
    for _ in range(max_inflight):
        await model.calls.acquire()
    await asyncio.sleep(0)
    # the first requests each took a free slot alone; the rest wait for one
    assert model.batches == [[float(i)] for i in range(max_inflight)]
    assert batcher.inflight == max_inflight
    assert batcher.queued_rows == 20 - max_inflight
    model.gate.set()
    results = await asyncio.gather(*submitted)
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(20)]
    assert model.most_running == max_inflight
    assert all(len(b) <= 4 for b in model.batches)
    assert sorted(v for b in model.batches for v in b) == [float(i) for i in range(20)]
    await batcher.stop()


async def test_blocking_run_uses_as_many_threads_as_slots() -> None:
    model = GatedModel(gated=True)
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_queue_items=64, max_inflight=2)
    batcher.start()
    submitted = [asyncio.ensure_future(batcher.submit(rows(float(i)))) for i in range(5)]
    await entered(model)
    await entered(model)                        # two calls inside the model at once
    assert batcher.inflight == 2 and batcher.queued_rows == 3
    model.gate.set()
    await asyncio.gather(*submitted)
    assert sorted(model.batches) == [1, 1, 3]
    await batcher.stop()


async def test_async_combined_failure_is_retried_per_request() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await model.calls.acquire()
    good1 = asyncio.ensure_future(batcher.submit(rows(1)))
    bad = asyncio.ensure_future(batcher.submit(rows(-1)))
    good2 = asyncio.ensure_future(batcher.submit(rows(3)))
    await asyncio.sleep(0)
    model.gate.set()
    assert (await good1)["y"][0, 0] == 2
    assert (await good2)["y"][0, 0] == 6
    with pytest.raises(BackendError, match="negative"):
        await bad
    await first
    assert model.batches == [[1], [1, -1, 3], [1], [-1], [3]]
    await batcher.stop()


async def test_batch_independent_failure_is_not_retried() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await model.calls.acquire()
    queued = [asyncio.ensure_future(batcher.submit(rows(v))) for v in (2, 2000, 3)]
    await asyncio.sleep(0)
    model.gate.set()
    await first
    for future in queued:
        with pytest.raises(Unavailable):
            await future
    assert model.batches == [[1], [2, 2000, 3]]   # backend down: every request fails at once
    await batcher.stop()


@pytest.mark.parametrize("last_timeout_s", [300.0, None])
async def test_async_batch_runs_under_its_latest_deadline(last_timeout_s: float | None) -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)

    async def submit(value: float, timeout_s: float | None) -> Arrays:
        with request_deadline(timeout_s):
            return await batcher.submit(rows(value))

    first = asyncio.ensure_future(submit(1, 100.0))
    await model.calls.acquire()
    later = [asyncio.ensure_future(submit(2, 200.0)),
             asyncio.ensure_future(submit(3, last_timeout_s))]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(first, *later)
    assert model.batches == [[1], [2, 3]]
    lone, pair = model.deadlines
    assert lone is not None
    if last_timeout_s is None:
        assert pair is None                      # one request without a deadline: none
    else:
        assert pair is not None and 150.0 < pair - lone < 250.0   # 300 s's, not 200 s's
    await batcher.stop()


async def test_stop_fails_queued_requests_unavailable() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await model.calls.acquire()
    queued = asyncio.ensure_future(batcher.submit(rows(2)))
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(batcher.stop())
    with pytest.raises(Unavailable, match="unloaded"):
        await queued
    model.gate.set()
    await stopping
    assert (await first)["y"][0, 0] == 2
    with pytest.raises(Unavailable):
        await batcher.submit(rows(1))


# ------------------------------------------------------------------ the embedded backend
async def test_embedded_backend_merges_concurrent_requests(tiny_bundle: Bundle) -> None:
    metrics = ServiceMetrics()
    backend = EmbeddedBackend(tiny_bundle, Settings(), metrics=metrics)
    await backend.load()
    dim, n = tiny_bundle.spec.latent_dim, 40
    z = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    one_by_one = await asyncio.gather(*(backend.decode(z[i:i + 1]) for i in range(n)))
    np.testing.assert_allclose(np.concatenate(one_by_one), await backend.decode(z), atol=1e-6)
    labels = {"model": tiny_bundle.spec.name, "component": "decoder"}
    calls = metrics.registry.get_sample_value("latentserve_backend_batch_size_count", labels)
    assert calls is not None and calls < n + 3      # fewer backend calls than requests
    await backend.unload()
