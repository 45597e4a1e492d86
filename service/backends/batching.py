"""Adaptive micro-batching: concurrent requests for one model component share backend calls.

The one batcher in front of every backend. Policy (no fixed timer by default): while fewer
than `max_inflight` batches run, a request is dispatched at once (a lone request on an idle
backend never waits); otherwise it queues, and the next free slot takes everything queued
(whole requests, up to `max_batch_size` rows). `max_delay_s > 0` opts into waiting that long
for a batch to fill, like Triton's `max_queue_delay_microseconds`. With several slots, a
`BusyHold` (`pacing`) lets rows gather briefly while a batch already runs instead of spreading
them over every slot, and a backend may narrow the slots (`inflight_limit`, e.g. from Triton's
queue statistics); the first slot is never held.

Background work (a projection's search populations) is submitted inside `background()`: it
waits in its own lane and gets a fair share, never the whole backend: each batch takes every
queued interactive request first, then at most `background_cap(max_batch_size)` background
rows, and batches of background rows alone occupy at most half the in-flight slots (at least
one); a larger background request is split into pieces of the cap. An interactive request
therefore waits for at most one capped background batch.

`run` is either a blocking function (ONNX Runtime; called in the batcher's own worker
threads, one per in-flight batch) or an async function (Triton's aio client; awaited on the
loop). Async runs see the latest deadline of the requests in the batch (`request_deadline`)
and, when tracing, the first request's trace context. Example::

    batcher = AdaptiveBatcher(session_run, max_batch_size=64, max_queue_items=4096)
    batcher.start()
    outputs = await batcher.submit({"z": z})     # z: [n ≤ 64, N]
    await batcher.stop()
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import cast

import numpy as np

from latentserve.core.arrays import Arrays
from latentserve.core.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from latentserve.service import tracing
from latentserve.service.backends.background import background, background_cap, in_background
from latentserve.service.backends.pacing import BusyHold, InflightLimit
from latentserve.service.deadline import deadline_at, request_deadline_at

__all__ = ["AdaptiveBatcher", "AsyncRunBatch", "BatchObserver", "RunBatch", "background",
           "background_cap"]

RunBatch = Callable[[Arrays], Arrays]
"""Blocking call that runs one batch (called in one of the batcher's worker threads)."""
AsyncRunBatch = Callable[[Arrays], Awaitable[Arrays]]
"""Async call that runs one batch on the event loop."""
BatchObserver = Callable[[int, float], None]
"""Called after every backend call with (rows, seconds)."""

BATCH_INDEPENDENT_ERRORS = (Unavailable, DeadlineExceeded)
"""Failures that say nothing about a batch's contents: not retried request by request."""

class _Pending:
    """One submitted request waiting for (or riding in) a batch."""

    __slots__ = ("background", "context", "deadline", "future", "inputs", "queued_at",
                 "queued_ns", "ran", "rows")

    def __init__(self, inputs: Arrays, rows: int, future: asyncio.Future[Arrays],
                 deadline: float | None, context: contextvars.Context | None) -> None:
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.deadline = deadline
        self.context = context
        self.queued_at = time.monotonic()
        self.queued_ns = time.time_ns() if context is not None else 0
        self.ran: tuple[int, int, int, int] | None = None
        """(started_ns, ended_ns, batch rows, batch requests) of the batch that served it."""
        self.background = False


class AdaptiveBatcher:
    """Queues requests for one component and runs them in batches, up to `max_inflight` at once.
    """

    def __init__(
        self,
        run: RunBatch | AsyncRunBatch,
        *,
        max_batch_size: int,
        max_queue_items: int,
        max_delay_s: float = 0.0,
        max_inflight: int = 1,
        on_batch: BatchObserver | None = None,
        on_queue: Callable[[int], None] | None = None,
        on_background: Callable[[int], None] | None = None,
        name: str = "batcher",
        busy_hold_s: float = 0.0,
        inflight_limit: InflightLimit | None = None,
    ) -> None:
        """`busy_hold_s`: longest hold of a second or later slot (see `pacing.BusyHold`; 0: no
        hold); `inflight_limit`: the backend's current limit, at most `max_inflight`."""
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be ≥ 1, got {max_inflight}")
        self._async = inspect.iscoroutinefunction(run)
        self._run_batch = run
        self.max_batch_size = max_batch_size
        self.max_queue_items = max_queue_items
        self.max_delay_s = max_delay_s
        self.max_inflight = max_inflight
        self._hold = (BusyHold(max_batch_size=max_batch_size, max_hold_s=busy_hold_s)
                      if busy_hold_s > 0 and max_inflight > 1 else None)
        self._inflight_limit = inflight_limit
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._on_background = on_background
        self._name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_rows = 0
        self._inflight = 0
        self._lane: collections.deque[_Pending] = collections.deque()
        """Background requests (see `background()`)."""
        self._lane_rows = 0
        self._lane_inflight = 0
        """Batches of background rows alone running now."""
        self.background_cap = background_cap(max_batch_size)
        self._lane_slots = max(1, max_inflight // 2)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._executor = (None if self._async else concurrent.futures.ThreadPoolExecutor(
            max_inflight, thread_name_prefix=name))

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a backend call."""
        return self._queued_rows

    @property
    def background_rows(self) -> int:
        """Background rows waiting for a backend call."""
        return self._lane_rows

    @property
    def inflight(self) -> int:
        """Batches running now."""
        return self._inflight

    @property
    def hold(self) -> BusyHold | None:
        """The busy hold of slots after the first (None: every free slot dispatches)."""
        return self._hold

    def slots(self) -> int:
        """Batches that may run at once now: `max_inflight`, or the backend's narrower limit."""
        if self._inflight_limit is None:
            return self.max_inflight
        return max(1, min(self.max_inflight, self._inflight_limit()))

    def start(self) -> None:
        """Accept requests (batches run as tasks of the loop that submits them)."""
        self._stopped = False

    async def stop(self) -> None:
        """Stop: queued requests fail; running batches finish (their waiting off the loop).

        A worker thread may be inside a long backend call (a slow warm-up, a huge batch):
        waiting for it runs in another thread, so every other RPC keeps being served.
        """
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            _fail(self._queue.popleft(), self._stopped_error())
        while self._lane:
            _fail(self._lane.popleft(), self._stopped_error())
        self._set_queued(0)
        self._set_lane(0)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def submit(self, inputs: Arrays) -> Arrays:
        """Queue one request of ≤ max_batch_size rows and await its outputs (same row order)."""
        rows = len(next(iter(inputs.values())))
        if rows > self.max_batch_size:
            raise ValueError(f"{rows} rows exceed max_batch_size {self.max_batch_size}")
        if self._stopped:
            raise self._stopped_error()
        lane = in_background()
        if lane and rows > self.background_cap:  # split: no batch takes more than the cap
            step = self.background_cap
            parts = await asyncio.gather(*(
                self.submit({k: v[lo:lo + step] for k, v in inputs.items()})
                for lo in range(0, rows, step)))
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if self._queued_rows + self._lane_rows + rows > self.max_queue_items:
            raise ResourceExhausted(
                f"batch queue of {self._name} is full ({self._queued_rows} rows waiting, "
                f"limit {self.max_queue_items}); retry later"
            )
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context() if tracing.enabled() else None
        pending = _Pending(inputs, rows, loop.create_future(), deadline_at(), context)
        if lane:
            pending.background = True
            self._lane.append(pending)
            self._set_lane(self._lane_rows + rows)
        else:
            self._queue.append(pending)
            self._set_queued(self._queued_rows + rows)
        self._dispatch()
        try:
            return await pending.future
        finally:
            if pending.ran is not None and context is not None:
                started_ns, ended_ns, batch_rows, batch_requests = pending.ran
                tracing.record_batch(pending.queued_ns, started_ns, ended_ns, rows, batch_rows,
                                     batch_requests)

    def _stopped_error(self) -> Unavailable:
        return Unavailable(f"{self._name} was unloaded; retry")

    def _set_queued(self, rows: int) -> None:
        self._queued_rows = rows
        if self._on_queue is not None:
            self._on_queue(rows)

    def _set_lane(self, rows: int) -> None:
        self._lane_rows = rows
        if self._on_background is not None:
            self._on_background(rows)

    def _dispatch(self) -> None:
        """Start batches from the queue while in-flight slots are free (the opt-in delay aside).
        """
        slots = self.slots()
        while self._inflight < slots and (self._queue or self._lane):
            if not self._queue:  # background rows alone: at most their share of the slots
                if self._lane_inflight >= self._lane_slots:
                    return
                batch = self._take_background([], 0)
                if not batch:
                    return
                self._start(batch)
                continue
            if self.max_delay_s > 0 and self._queued_rows < self.max_batch_size:
                wait = self._queue[0].queued_at + self.max_delay_s - time.monotonic()
                if wait > 0:
                    self._wake_in(wait)
                    return
            if self._inflight and self._hold is not None and \
                    self._queued_rows < self._hold.fill_rows:
                wait = self._queue[0].queued_at + self._hold.hold_s() - time.monotonic()
                if wait > 0:  # a batch runs: let rows gather (a call's end dispatches too)
                    self._wake_in(wait)
                    return
            batch = self._take_batch()
            if self._lane:
                batch = self._take_background(batch, sum(p.rows for p in batch))
            if not batch:
                return
            self._start(batch)

    def _start(self, batch: list[_Pending]) -> None:
        """Run `batch` in a new in-flight slot."""
        self._inflight += 1
        lane_only = all(p.background for p in batch)
        if lane_only:
            self._lane_inflight += 1
        context = next((p.context for p in batch if p.context is not None), None)
        task = asyncio.get_running_loop().create_task(self._run(batch, lane_only),
                                                      context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take_background(self, batch: list[_Pending], rows: int) -> list[_Pending]:
        """Add background requests (FIFO) to `batch` within the batch size and the background
        cap."""
        taken = share = 0
        while self._lane:
            head = self._lane[0]
            if head.future.done():
                self._lane.popleft()
                taken += head.rows
                continue
            if share + head.rows > self.background_cap or rows + head.rows > self.max_batch_size:
                break
            self._lane.popleft()
            taken += head.rows
            share += head.rows
            rows += head.rows
            batch.append(head)
        if taken:
            self._set_lane(self._lane_rows - taken)
        return batch

    def _wake_in(self, seconds: float) -> None:
        """Dispatch again in `seconds` (unless a wake-up is already set)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._dispatch()

    def _take_batch(self) -> list[_Pending]:
        """Pop whole requests from the queue head while they fit into one batch."""
        batch: list[_Pending] = []
        rows = 0
        taken = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # cancelled (deadline, client gone): drop it
                self._queue.popleft()
                taken += head.rows
                continue
            if batch and rows + head.rows > self.max_batch_size:
                break
            self._queue.popleft()
            taken += head.rows
            batch.append(head)
            rows += head.rows
        self._set_queued(self._queued_rows - taken)
        return batch

    async def _run(self, batch: list[_Pending], lane_only: bool = False) -> None:
        """Run one batch in its in-flight slot; if a combined batch fails, retry each request
        alone (unless the failure is batch-independent: backend down, deadline passed)."""
        try:
            try:
                error = await self._attempt(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    _fail(pending, self._stopped_error())
                raise
            if error is None:
                return
            if len(batch) == 1 or isinstance(error, BATCH_INDEPENDENT_ERRORS):
                for pending in batch:
                    _fail(pending, error)
                return
            for pending in batch:
                if not pending.future.done():
                    alone = await self._attempt([pending])
                    if alone is not None:
                        _fail(pending, alone)
        finally:
            self._inflight -= 1
            if lane_only:
                self._lane_inflight -= 1
            if not self._stopped:
                self._dispatch()

    async def _attempt(self, batch: list[_Pending]) -> Exception | None:
        """One backend call for `batch`: results handed out in order, or the call's error."""
        started_ns = time.time_ns()
        rows = sum(p.rows for p in batch)
        try:
            outputs = await self._call(_concat(batch), rows, _latest(batch))
        except Exception as exc:
            ran = (started_ns, time.time_ns(), rows, len(batch))
            for pending in batch:
                pending.ran = ran
            return exc
        ended_ns = time.time_ns()
        ran = (started_ns, ended_ns, rows, len(batch))
        if self._hold is not None:
            self._hold.observe((ended_ns - started_ns) / 1e9)
        if len(batch) == 1:
            batch[0].ran = ran
            if not batch[0].future.done():
                batch[0].future.set_result(outputs)
            return None
        offset = 0
        for pending in batch:
            pending.ran = ran
            if not pending.future.done():
                pending.future.set_result(
                    {k: v[offset : offset + pending.rows] for k, v in outputs.items()}
                )
            offset += pending.rows
        return None

    async def _call(self, inputs: Arrays, rows: int, deadline: float | None) -> Arrays:
        if not self._async:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._call_blocking, inputs, rows)
        run = cast(AsyncRunBatch, self._run_batch)
        started = time.perf_counter()
        with request_deadline_at(deadline):
            outputs = await run(inputs)
        if self._on_batch is not None:
            self._on_batch(rows, time.perf_counter() - started)
        return outputs

    def _call_blocking(self, inputs: Arrays, rows: int) -> Arrays:
        run = cast(RunBatch, self._run_batch)
        started = time.perf_counter()
        outputs = run(inputs)
        if self._on_batch is not None:
            self._on_batch(rows, time.perf_counter() - started)
        return outputs


def _concat(batch: list[_Pending]) -> Arrays:
    if len(batch) == 1:
        return batch[0].inputs
    return {k: np.concatenate([p.inputs[k] for p in batch]) for k in batch[0].inputs}


def _latest(batch: list[_Pending]) -> float | None:
    """The batch's deadline: the latest of its requests' (None if one has none)."""
    deadlines = [p.deadline for p in batch]
    return None if None in deadlines else max(cast(list[float], deadlines))


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)

