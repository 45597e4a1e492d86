"""Adaptive micro-batching: concurrent requests for one ONNX component share backend calls.

Policy (no fixed timer by default): when the worker is idle a request runs at once; while a
batch runs, new requests queue, and the next batch takes everything queued (whole requests, up
to `max_batch_size` rows). `max_delay_s > 0` opts into waiting that long for a batch to fill,
like Triton's `max_queue_delay_microseconds`. Example::

    batcher = AdaptiveBatcher(session_run, max_batch_size=64, max_queue_items=4096)
    batcher.start()
    outputs = await batcher.submit({"z": z})     # z: [n ≤ 64, N]
    await batcher.stop()
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from latentserve.core.arrays import Arrays
from latentserve.core.errors import ResourceExhausted
from latentserve.service import tracing

RunBatch = Callable[[Arrays], Arrays]
"""Blocking call that runs one batch (called in the batcher's worker thread)."""
BatchObserver = Callable[[int, float], None]
"""Called after every backend call with (rows, seconds)."""


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    queued_at: float = field(default_factory=time.monotonic)
    queued_ns: int = field(default_factory=time.time_ns)
    ran: tuple[int, int, int, int] | None = None
    """(started_ns, ended_ns, batch rows, batch requests) of the batch that served it."""


class AdaptiveBatcher:
    """Queues requests for one component and runs them in batches in a worker thread."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int,
        max_queue_items: int,
        max_delay_s: float = 0.0,
        on_batch: BatchObserver | None = None,
        on_queue: Callable[[int], None] | None = None,
        name: str = "batcher",
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_items = max_queue_items
        self.max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._worker: asyncio.Task[None] | None = None

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a backend call."""
        return self._queued_rows

    def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"{self._name}-worker"
            )

    async def stop(self) -> None:
        """Stop the worker; queued requests fail, the running batch is awaited off the loop.

        The worker thread may be inside a long backend call (a slow warm-up, a huge batch):
        waiting for it runs in another thread, so every other RPC keeps being served.
        """
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError(f"{self._name} stopped"))
        self._set_queued(0)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def submit(self, inputs: Arrays) -> Arrays:
        """Queue one request of ≤ max_batch_size rows and await its outputs (same row order)."""
        rows = len(next(iter(inputs.values())))
        if rows > self.max_batch_size:
            raise ValueError(f"{rows} rows exceed max_batch_size {self.max_batch_size}")
        if self._queued_rows + rows > self.max_queue_items:
            raise ResourceExhausted(
                f"batch queue of {self._name} is full ({self._queued_rows} rows waiting, "
                f"limit {self.max_queue_items}); retry later"
            )
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        pending = _Pending(inputs, rows, future)
        self._queue.append(pending)
        self._set_queued(self._queued_rows + rows)
        self._wakeup.set()
        try:
            return await future
        finally:
            if pending.ran is not None:
                started_ns, ended_ns, batch_rows, batch_requests = pending.ran
                tracing.record_batch(pending.queued_ns, started_ns, ended_ns, rows, batch_rows,
                                     batch_requests)

    def _set_queued(self, rows: int) -> None:
        self._queued_rows = rows
        if self._on_queue is not None:
            self._on_queue(rows)

    def _take_batch(self) -> list[_Pending]:
        """Pop whole requests from the queue head while they fit into one batch."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # cancelled (deadline, client gone): drop it
                self._queue.popleft()
                self._set_queued(self._queued_rows - head.rows)
                continue
            if batch and rows + head.rows > self.max_batch_size:
                break
            self._queue.popleft()
            self._set_queued(self._queued_rows - head.rows)
            batch.append(head)
            rows += head.rows
        return batch

    async def _wait_to_fill(self) -> None:
        """Opt-in: wait up to max_delay_s after the first arrival for a full batch."""
        deadline = self._queue[0].queued_at + self.max_delay_s
        while self._queued_rows < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_delay_s > 0:
                await self._wait_to_fill()
            batch = self._take_batch()
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        """Run one batch; if a combined batch fails, retry each request alone."""
        started_ns = time.time_ns()
        try:
            outputs = await loop.run_in_executor(self._executor, self._call, _concat(batch))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].ran = (started_ns, time.time_ns(), batch[0].rows, 1)
                _fail(batch[0], exc)
                return
            for pending in batch:
                await self._run(loop, [pending])
            return
        ran = (started_ns, time.time_ns(), sum(p.rows for p in batch), len(batch))
        offset = 0
        for pending in batch:
            pending.ran = ran
            if not pending.future.done():
                pending.future.set_result(
                    {k: v[offset : offset + pending.rows] for k, v in outputs.items()}
                )
            offset += pending.rows

    def _call(self, inputs: Arrays) -> Arrays:
        started = time.perf_counter()
        outputs = self._run_batch(inputs)
        if self._on_batch is not None:
            rows = len(next(iter(inputs.values())))
            self._on_batch(rows, time.perf_counter() - started)
        return outputs


def _concat(batch: list[_Pending]) -> Arrays:
    if len(batch) == 1:
        return batch[0].inputs
    return {k: np.concatenate([p.inputs[k] for p in batch]) for k in batch[0].inputs}


def _fail(pending: _Pending, exc: Exception) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
