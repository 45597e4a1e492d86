"""Pytest plugin: a real local `tritonserver` (CPU, python backend) for the Triton tests.

Fixtures:
- `triton_venv` (session): `.venv-triton` built once (stamp file; ~1 min the first time);
  `LATENTSERVE_TRITON_VENV` overrides the path.
- `triton_server` (session): a started `TritonProcess` on free 127.0.0.1 ports, explicit model
  control, an empty model repository in tmp; tests that kill or pause it use `fresh_triton`.
- `fresh_triton` (function): a server of its own, closed after the test.
- `triton_settings` (session): Settings for the session server (backend triton, python flavour);
  `triton_settings_for(server, **overrides)` builds them for any server.
- `triton_metric` (session): reads one Triton Prometheus counter for a model.
A server that cannot start fails the test with its log; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from latentserve.service.devtools.triton_local import (
    TritonProcess,
    TritonSetupError,
    ensure_triton_venv,
)
from latentserve.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _start(server: TritonProcess) -> TritonProcess:
    try:
        return server.start()
    except TritonSetupError as exc:
        pytest.fail(f"tritonserver did not start:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def triton_venv() -> Path:
    path = Path(os.environ.get("LATENTSERVE_TRITON_VENV", REPO_ROOT / ".venv-triton"))
    try:
        return ensure_triton_venv(path)
    except TritonSetupError as exc:
        pytest.fail(f"could not build the Triton venv {path}:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def triton_server(
    triton_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonProcess]:
    root = tmp_path_factory.mktemp("triton")
    server = TritonProcess(root / "models", venv=triton_venv, log_path=root / "tritonserver.log")
    _start(server)
    yield server
    server.close()


@pytest.fixture
def fresh_triton(triton_venv: Path, tmp_path: Path) -> Iterator[TritonProcess]:
    server = TritonProcess(
        tmp_path / "models", venv=triton_venv, log_path=tmp_path / "tritonserver.log"
    )
    _start(server)
    yield server
    server.kill()  # a graceful stop takes ~2 s; this server is throw-away
    server.close()


def settings_for(server: TritonProcess, **overrides: object) -> Settings:
    """Service settings pointing at `server` with the python flavour and explicit control."""
    values: dict[str, object] = {
        "backend": "triton",
        "triton_url": server.grpc_url,
        "triton_flavor": "python",
        "triton_model_control": "explicit",
        "default_deadline_s": 20.0,
        # Through the service n=1 requests reach Triton ~1 ms apart on this CPU; a 2 ms window
        # lets Triton's dynamic batcher group them (the default 100 µs rarely does here).
        "triton_max_queue_delay_us": 2000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def triton_settings(triton_server: TritonProcess) -> Settings:
    return settings_for(triton_server)


@pytest.fixture(scope="session")
def triton_settings_for() -> Callable[..., Settings]:
    return settings_for


def read_metric(server: TritonProcess, metric: str, model: str) -> float:
    """The value of a Triton counter (e.g. nv_inference_count) for `model` version 1."""
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^{metric}\{{[^}}]*model="{re.escape(model)}"[^}}]*\}} ([0-9.e+]+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="session")
def triton_metric(triton_server: TritonProcess) -> Callable[[str, str], float]:
    return lambda metric, model: read_metric(triton_server, metric, model)
