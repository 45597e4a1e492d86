"""The in-flight limit of one Triton model, tuned from Triton's own queue statistics.

The service merges concurrent requests into batches before Triton; every batch it keeps in
flight beyond what Triton can run at once only waits in Triton's queue, where it is merged
again less well (the service's next batch would have taken those rows). So the limit starts at
one batch in flight; it steps up (towards `triton_max_inflight`) only while one batch no longer
holds what queues (Triton's batches at least half the model's max batch size), requests do not
queue inside Triton and the model computed for under a quarter of the interval (room for
another batch: a GPU, several instances); it steps down while requests queue inside
Triton (queue time ≥ half the compute time, both summed over requests). The statistics are
read at most once per `interval_s`, in the background, only while batches are dispatched.
Example::

    tuner = InflightTuner(lambda: client, "sprites-vae__v1", max_inflight=4)
    batcher = AdaptiveBatcher(run, ..., max_inflight=4, inflight_limit=tuner)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from latentserve.service.logs import get_logger

log = get_logger(__name__)

QUEUED = 0.5
"""Queue time ≥ this share of compute time (summed over requests): Triton has a queue (step
down)."""
IDLE = 0.05
"""Queue time ≤ this share: requests do not wait inside Triton."""
BUSY = 0.25
"""Step up only while Triton computed less than this share of the interval (room for another
batch in flight)."""
STATS_TIMEOUT_S = 1.0


def _ns(stats: dict[str, Any], name: str) -> tuple[float, float]:
    """(count, ns) of one duration statistic (JSON gives int64 values as strings)."""
    entry = stats.get(name, {})
    return float(entry.get("count", 0)), float(entry.get("ns", 0))


class InflightTuner:
    """Callable giving the current in-flight limit (1 … `max_inflight`) of `model`."""

    def __init__(self, client: Callable[[], InferenceServerClient], model: str, *,
                 max_inflight: int, max_batch_size: int, interval_s: float = 1.0) -> None:
        self._client = client
        self.model = model
        self.max_inflight = max_inflight
        self.full_rows = max(1, max_batch_size // 2)
        """Rows per Triton execution from which one batch in flight no longer suffices."""
        self.limit = 1
        """Starts at one batch in flight (the service merges what arrives meanwhile); rises
        while Triton neither queues nor is busy."""
        self.interval_s = interval_s
        self._last: tuple[float, float, float, float, float, float] | None = None
        self.busy: float | None = None
        self.batch: float | None = None
        """The last interval's mean rows per Triton execution."""
        """The last interval's share of wall time the model computed."""
        self._read_at = 0.0
        self.queue_share: float | None = None
        """The last interval's queue time ÷ compute time, both summed over requests."""
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> int:
        """The limit now; starts a background statistics read when one is due."""
        now = time.monotonic()
        if self.max_inflight > 1 and now >= self._read_at and self._task is None:
            self._read_at = now + self.interval_s
            self._task = asyncio.get_running_loop().create_task(self.refresh())
            self._task.add_done_callback(self._done)
        return self.limit

    def _done(self, task: asyncio.Task[None]) -> None:
        self._task = None

    def close(self) -> None:
        """Stop a statistics read in progress (the version is being unloaded)."""
        if self._task is not None:
            self._task.cancel()

    async def refresh(self) -> None:
        """Read Triton's statistics of the model now and step the limit from them."""
        try:
            stats = await self._client().get_inference_statistics(
                self.model, as_json=True, client_timeout=STATS_TIMEOUT_S)
        except InferenceServerException:
            return  # a failing server shows in the requests themselves
        # queue ns, compute ns (both summed over requests), busy ns, rows, executions
        totals = [0.0, 0.0, 0.0, 0.0, 0.0]
        for entry in stats.get("model_stats", []):
            totals[3] += float(entry.get("inference_count", 0))
            totals[4] += float(entry.get("execution_count", 0))
            inference = entry.get("inference_stats", {})
            totals[0] += _ns(inference, "queue")[1]
            totals[1] += _ns(inference, "compute_infer")[1]
            totals[2] += sum(_ns(batch, "compute_infer")[1]
                             for batch in entry.get("batch_stats", []))
        self.update(*totals, now_s=time.monotonic())

    def update(self, queue_ns: float, compute_ns: float, busy_ns: float, rows: float,
               executions: float, *, now_s: float) -> None:
        """Step the limit from cumulative statistics (the change since the last call): queue
        and compute time summed over requests, compute time summed over executions (how long
        the model ran), rows inferred and executions, read at `now_s`."""
        last, self._last = self._last, (queue_ns, compute_ns, busy_ns, now_s, rows, executions)
        if last is None:
            return
        d_queue, d_compute = queue_ns - last[0], compute_ns - last[1]
        busy = (busy_ns - last[2]) / 1e9 / max(now_s - last[3], 1e-9)
        d_executions = executions - last[5]
        if d_compute <= 0 or d_executions <= 0:
            return  # no traffic in the interval
        self.batch = (rows - last[4]) / d_executions
        queue_share = self.queue_share = d_queue / d_compute
        self.busy = busy
        before = self.limit
        if queue_share >= QUEUED:
            self.limit = max(1, self.limit - 1)
        elif queue_share <= IDLE and busy < BUSY and self.batch >= self.full_rows:
            self.limit = min(self.max_inflight, self.limit + 1)
        if self.limit != before:
            log.debug("triton in-flight limit", model=self.model, limit=self.limit,
                      queue_share=round(queue_share, 3), busy=round(busy, 3),
                      batch=round(self.batch, 1))
