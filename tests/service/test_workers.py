"""`LATENTSERVE_WORKERS=2`: two serving processes on one port under a parent that aggregates
metrics, forwards SIGTERM (each worker drains), restarts a dead worker and fails loudly when one
cannot start. Real `latentserve serve` processes over a real registry."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from latentserve.client import AsyncClient, UnavailableError
from tests.fixtures.process import ServeProcess


def _metric(metrics_port: int, pattern: str) -> float:
    """Sum of the samples whose line matches `pattern` on the parent's /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern} (\S+)$", text, re.M))


@pytest.fixture
def pool(registry_uri: str, tmp_path: Path) -> Iterator[ServeProcess]:
    served = ServeProcess(registry_uri, tmp_path / "cache", workers=2, grace_period_s=30,
                          max_queue_items=65536)
    try:
        yield served.wait_serving()
    finally:
        served.close()


@pytest.mark.timeout(180)
async def test_two_workers_share_the_port_and_the_metrics(pool: ServeProcess) -> None:
    workers = pool.children()
    assert len(workers) == 2, workers
    clients = [AsyncClient(pool.address, timeout_s=60, retries=0) for _ in range(8)]
    try:  # one channel each: connections spread over the workers
        results = await asyncio.gather(*(c.sample("tiny", n=2, seed=i)
                                         for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert all(r.latents.shape == (2, 4) for r in results)
    samples = r'latentserve_requests_total\{code="OK",model="tiny",rpc="Sample"\}'
    served = await asyncio.to_thread(_metric, pool.metrics_port, samples)
    assert served == len(clients)  # summed over the workers' files by the parent
    loaded = await asyncio.to_thread(
        _metric, pool.metrics_port, r'latentserve_loaded_versions\{model="tiny"\}')
    assert loaded == 1  # livemax: each worker has tiny loaded once
    assert await asyncio.to_thread(pool.terminate) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text()


@pytest.mark.timeout(180)
async def test_sigterm_drains_every_worker(pool: ServeProcess) -> None:
    clients = [AsyncClient(pool.address, timeout_s=60, retries=0) for _ in range(4)]
    try:
        calls = [asyncio.ensure_future(clients[i % 4].sample("tiny", n=1024, seed=i,
                                                             output="png"))
                 for i in range(24)]
        # SIGTERM once every call unfinished before a scrape runs in a worker at that scrape
        # (the workers finish their shares at different times, so not all 24 need still run).
        deadline = time.monotonic() + 60
        while True:
            unfinished = sum(not c.done() for c in calls)
            assert unfinished, "requests finished before SIGTERM"
            running = await asyncio.to_thread(
                _metric, pool.metrics_port, "latentserve_inflight_requests")
            if running >= unfinished:
                break
            assert time.monotonic() < deadline, "requests never reached the workers"
        pool.proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures[:3]
        with pytest.raises(UnavailableError):
            await clients[0].sample("tiny", n=1, timeout_s=5)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert await asyncio.to_thread(pool.proc.wait, 60) == 0


@pytest.mark.timeout(180)
async def test_a_worker_that_dies_is_restarted(pool: ServeProcess) -> None:
    victim = pool.children()[0]
    os.kill(victim, signal.SIGKILL)
    died = await asyncio.to_thread(pool.wait_event, "worker died; restarting")
    assert died["pid"] == victim
    ready = await asyncio.to_thread(pool.wait_event, "worker ready", slot=died["slot"])
    assert ready["pid"] != victim
    assert victim not in pool.children()
    assert len(pool.children()) == 2
    clients = [AsyncClient(pool.address, timeout_s=60, retries=0) for _ in range(8)]
    try:
        results = await asyncio.gather(*(c.sample("tiny", n=1, seed=i)
                                         for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert len(results) == len(clients)
    assert await asyncio.to_thread(pool.terminate) == 0


@pytest.mark.timeout(120)
def test_a_worker_that_cannot_start_fails_the_server(registry_uri: str, tmp_path: Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("")
    served = ServeProcess(registry_uri, tmp_path / "cache", workers=2, auth_token_file=empty)
    try:
        code = served.proc.wait(90)
        assert code not in (0, None)
        served.wait_event("worker failed to start; stopping", timeout_s=10)
    finally:
        served.close()
