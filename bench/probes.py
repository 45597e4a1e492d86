"""Where a load run's time went: CPU seconds per process and the service's own backend metrics.

On a small machine the harness, the service and tritonserver share the CPUs, so every measured
window also records how many cores each used (`/proc/<pid>/stat`, all threads; a process group
for tritonserver and its python-backend stubs), how many the whole machine used (`machine`:
the difference is other work on the machine), and, from the service's Prometheus endpoint, the
average backend batch and the share of wall time spent inside backend calls. Example::

    probe = Probe({"harness": lambda: [os.getpid()], "service": lambda: [svc.pid]},
                  service_metrics=svc.metrics_url)
    result, raw = await probe.measure(closed_loop(...))
    totals = add(totals, raw); derived(totals)    # {"cores": {...}, "avg_backend_batch": ...}
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bench.load import rounded

T = TypeVar("T")
Pids = Callable[[], list[int]]
_TICKS = os.sysconf("SC_CLK_TCK")
_BACKEND_SERIES = {
    "batch_rows": "latentserve_backend_batch_size_sum",
    "batch_calls": "latentserve_backend_batch_size_count",
    "backend_s": "latentserve_backend_latency_seconds_sum",
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _proc_stats() -> list[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process."""
    stats = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats.append((int(entry.name),
                          (entry / "stat").read_text().rsplit(")", 1)[1].split()))
        except (OSError, IndexError):
            continue
    return stats


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (a service and the workers it started)."""
    children: dict[int, list[int]] = {}
    for child, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (every core; /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / _TICKS


def group_pids(pgid: int) -> list[int]:
    """Processes whose process group is `pgid` (a server and the children it started)."""
    return [pid for pid, fields in _proc_stats() if int(fields[2]) == pgid]


def metrics_text(metrics_url: str) -> str:
    """The service's Prometheus exposition text."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        return str(response.read().decode())


def backend_counters(metrics_url: str, component: str = "decoder") -> dict[str, float]:
    """The service's backend batch-size and latency sums/counts for `component`."""
    text = metrics_text(metrics_url)
    totals = {}
    for key, series in _BACKEND_SERIES.items():
        pattern = rf'^{series}\{{[^}}]*component="{component}"[^}}]*\}} ([0-9.e+-]+)$'
        totals[key] = sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))
    return totals


def add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Key-wise sum of two raw probe readings."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


class Probe:
    """Reads CPU time of named process sets (and optionally service metrics) around a run."""

    def __init__(self, processes: dict[str, Pids], service_metrics: str | None = None) -> None:
        self.processes = processes
        self.service_metrics = service_metrics

    def read(self) -> dict[str, float]:
        values = {"wall_s": time.perf_counter(), "cpu_s.machine": machine_busy_seconds()}
        for name, pids in self.processes.items():
            values[f"cpu_s.{name}"] = sum(cpu_seconds(p) for p in pids())
        if self.service_metrics is not None:
            values |= backend_counters(self.service_metrics)
        return values

    async def measure(self, run: Awaitable[T]) -> tuple[T, dict[str, float]]:
        """Await `run`; return its result and the probe's raw deltas over it."""
        before = self.read()
        result = await run
        after = self.read()
        return result, {k: after[k] - before[k] for k in before}

    def summed(self, name: str, run: Callable[[], Awaitable[T]], into: dict[str, dict[str, float]],
               ) -> Callable[[], Awaitable[T]]:  # fmt: skip
        """`run` measured each time it is awaited, its deltas added up in `into[name]`."""
        async def measured() -> T:
            result, delta = await self.measure(run())
            into[name] = add(into.get(name, {}), delta)
            return result

        return measured


def derived(raw: dict[str, float]) -> dict[str, object]:
    """Cores used per process set, average backend batch, share of wall time in the backend."""
    wall = raw.get("wall_s", 0.0)
    cores = {k.removeprefix("cpu_s."): rounded(v / wall, 2) if wall else None
             for k, v in sorted(raw.items()) if k.startswith("cpu_s.")}
    out: dict[str, object] = {"cores": cores}
    if "batch_calls" in raw:
        calls = raw["batch_calls"]
        out["avg_backend_batch"] = rounded(raw["batch_rows"] / calls, 1) if calls else None
        out["backend_busy"] = rounded(raw["backend_s"] / wall, 3) if wall else None
    return out
