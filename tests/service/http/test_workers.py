"""`LATENTSERVE_WORKERS=2` with an HTTP port: both workers serve it (SO_REUSEPORT), as they
share the gRPC port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from latentserve.service.devtools.processes import free_port
from tests.fixtures.process import ServeProcess


@pytest.mark.timeout(300)
def test_workers_share_the_http_port(registry_uri: str, tmp_path: Path) -> None:
    port = free_port()
    served = ServeProcess(registry_uri, tmp_path / "cache", workers=2, http_port=port)
    try:
        served.wait_serving(timeout_s=240)
        tags = set()
        for seed in range(400):  # a fresh connection each time: the kernel spreads them
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/sample", timeout=60,
                                json={"model": {"name": "tiny"}, "n": 1, "seed": seed},
                                headers={"connection": "close"})
            assert answer.status_code == 200, answer.text
            tags.add(answer.headers["x-request-id"][:6])  # the per-process part of the id
            if len(tags) == 2:
                break
        assert len(tags) == 2, "every HTTP request reached the same worker"
        assert served.terminate() == 0
    finally:
        served.close()
