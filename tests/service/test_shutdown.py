"""`latentserve serve` as a real process: SIGTERM drains in-flight requests, then exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from latentserve.client import AsyncClient, UnavailableError


def _serve(registry_uri: str, cache: Path) -> tuple[subprocess.Popen[str], str, int]:
    env = {**os.environ, "LATENTSERVE_REGISTRY_URI": registry_uri,
           "LATENTSERVE_DEFAULT_MODEL": "tiny", "LATENTSERVE_CACHE_DIR": str(cache),
           "LATENTSERVE_PORT": "0", "LATENTSERVE_METRICS_PORT": "0",
           "LATENTSERVE_GRACE_PERIOD_S": "30", "LATENTSERVE_LOG_LEVEL": "WARNING",
           "LATENTSERVE_MAX_QUEUE_ITEMS": "65536",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from latentserve.cli import main; main()", "serve"],
        env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:          # the announce line comes once the model is ready
        seen.append(line)
        found = re.search(r"on (127\.0\.0\.1:\d+) \(metrics: http://127\.0\.0\.1:(\d+)", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, found.group(1), int(found.group(2))
    raise AssertionError("server exited before serving:\n" + "".join(seen))


def _inflight(metrics_port: int) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^latentserve_inflight_requests (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.timeout(180)
async def test_sigterm_drains_in_flight_requests(registry_uri: str, tmp_path: Path) -> None:
    proc, address, metrics_port = await asyncio.to_thread(_serve, registry_uri, tmp_path)
    try:
        async with AsyncClient(address, timeout_s=60, retries=0) as client:
            calls = [asyncio.ensure_future(client.sample("tiny", n=1024, seed=i, output="png"))
                     for i in range(24)]
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(_inflight, metrics_port) < len(calls):
                assert time.monotonic() < deadline, "requests never reached the server"
                assert not all(c.done() for c in calls), "requests finished before SIGTERM"
            proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls, return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, failures[:3]
            assert all(len(r.png) == 1024 for r in results)  # type: ignore[union-attr]
            with pytest.raises(UnavailableError):
                await client.sample("tiny", n=1, timeout_s=5)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
