"""Pacing of the batcher's in-flight slots: the busy hold and a backend's in-flight limit
(Triton's, tuned from its queue statistics)."""

from __future__ import annotations

import asyncio

import pytest
from tritonclient.grpc.aio import InferenceServerClient

from latentserve.service.backends.pacing import BusyHold
from latentserve.service.backends.triton_inflight import InflightTuner
from tests.service.test_batching import AsyncGatedModel, async_batcher, rows


async def test_first_slot_is_immediate_and_later_ones_hold_a_small_queue() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model, max_batch_size=8, max_inflight=4, busy_hold_s=60.0)
    assert batcher.hold is not None and batcher.hold.fill_rows == 4
    batcher.hold.observe(3600.0)  # a typical call is long: a later slot may hold 60 s
    first = asyncio.create_task(batcher.submit(rows(0)))
    await model.calls.acquire()   # a lone request on an idle backend runs at once
    later = [asyncio.create_task(batcher.submit(rows(float(i)))) for i in range(1, 3)]
    await asyncio.sleep(0)
    assert batcher.inflight == 1 and batcher.queued_rows == 2  # held, not sent to slot 2
    model.gate.set()              # the running call ends: the held rows go as one batch
    await asyncio.gather(first, *later)
    assert model.batches == [[0], [1, 2]]
    await batcher.stop()


async def test_a_queue_of_fill_rows_takes_another_slot_at_once() -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model, max_batch_size=8, max_inflight=4, busy_hold_s=60.0)
    assert batcher.hold is not None
    batcher.hold.observe(3600.0)
    first = asyncio.create_task(batcher.submit(rows(0)))
    await model.calls.acquire()
    full = asyncio.create_task(batcher.submit(rows(1, 2, 3, 4)))  # fill_rows: no hold
    await model.calls.acquire()
    assert batcher.inflight == 2 and model.batches == [[0], [1, 2, 3, 4]]
    model.gate.set()
    await asyncio.gather(first, full)
    await batcher.stop()


async def test_without_a_measured_call_nothing_is_held() -> None:
    hold = BusyHold(max_batch_size=64, max_hold_s=0.002)
    assert hold.hold_s() == 0.0
    hold.observe(0.001)
    assert hold.hold_s() == 0.0005
    hold.observe(1.0)
    assert hold.hold_s() == 0.002  # capped


async def test_single_slot_batchers_have_no_hold() -> None:
    batcher = async_batcher(AsyncGatedModel(), max_inflight=1, busy_hold_s=60.0)
    assert batcher.hold is None
    await batcher.stop()


@pytest.mark.parametrize("limit", [1, 3])
async def test_backend_limit_narrows_the_slots(limit: int) -> None:
    model = AsyncGatedModel()
    batcher = async_batcher(model, max_batch_size=1, max_inflight=4,
                            inflight_limit=lambda: limit)
    assert batcher.slots() == limit
    submitted = [asyncio.create_task(batcher.submit(rows(float(i)))) for i in range(6)]
    for _ in range(limit):
        await model.calls.acquire()
    await asyncio.sleep(0)
    assert batcher.inflight == limit and batcher.queued_rows == 6 - limit
    model.gate.set()
    await asyncio.gather(*submitted)
    assert model.most_running == limit
    await batcher.stop()


def _tuner(max_inflight: int = 4) -> InflightTuner:
    """A tuner fed statistics by hand (`update`); its client is never asked."""

    def no_client() -> InferenceServerClient:
        raise AssertionError("statistics are given by the test")

    return InflightTuner(no_client, "m__v1", max_inflight=max_inflight, max_batch_size=16)


def test_tuner_starts_at_one_and_steps_up_only_while_one_batch_no_longer_holds_the_queue(
) -> None:
    tuner = _tuner()
    assert tuner.limit == 1 and tuner.full_rows == 8
    tuner.update(0, 0, 0, 0, 0, now_s=0.0)  # first reading: a baseline only
    # 1 s: no queueing, the model busy 5 % of the time, but batches of 4 rows: one suffices
    tuner.update(0, 100e6, 50e6, 40, 10, now_s=1.0)
    assert tuner.limit == 1 and tuner.queue_share == 0.0 and tuner.busy == 0.05
    assert tuner.batch == 4.0
    # batches of 12 rows (≥ half of 16): another batch in flight
    tuner.update(0, 200e6, 100e6, 160, 20, now_s=2.0)
    assert tuner.limit == 2
    for k in range(3, 9):
        tuner.update(0, 100e6 * k, 50e6 * k, 160 + 120 * (k - 2), 10 * k, now_s=float(k))
    assert tuner.limit == 4               # never above triton_max_inflight
    tuner.update(0, 800e6, 400e6, 880, 80, now_s=9.0)  # no traffic: unchanged
    assert tuner.limit == 4


def test_tuner_steps_down_while_requests_queue_and_holds_while_triton_is_busy() -> None:
    tuner = _tuner()
    tuner.limit = 4
    tuner.update(0, 0, 0, 0, 0, now_s=0.0)
    # queue time 0.3 s against compute 0.2 s: a queue inside Triton
    tuner.update(300e6, 200e6, 100e6, 120, 10, now_s=1.0)
    tuner.update(600e6, 400e6, 200e6, 240, 20, now_s=2.0)
    assert tuner.limit == 2
    for k in range(3, 12):
        tuner.update(300e6 * k, 200e6 * k, 100e6 * k, 120 * k, 10 * k, now_s=float(k))
    assert tuner.limit == 1               # never below one
    # full batches, no queue, but the model computed 90 % of the time: no room for another
    tuner.update(300e6 * 11, 200e6 * 11 + 900e6, 100e6 * 11 + 900e6, 120 * 12, 120,
                 now_s=12.0)
    assert tuner.limit == 1
