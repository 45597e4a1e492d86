"""deploy/docker/triton-serve.sh starts a real tritonserver with the flags it promises.

Runs the script against the pip-installed Triton (pytriton's build, CPU) from `.venv-triton`:
the production NGC image is not available here, but the flags and their effect are the same.
Ports and addresses are appended as extra arguments, which also proves that they pass through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from latentserve.service.devtools.processes import free_port
from latentserve.service.devtools.triton_local import (
    TritonLayout,
    TritonSetupError,
    ensure_triton_venv,
)
from tests.fixtures.deploy import DOCKER, REPO

pytestmark = pytest.mark.triton

ADMIN_KEY = "test-admin-key"
ADMIN_HEADER = {"triton-grpc-protocol-admin-key": ADMIN_KEY}
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class Started:
    """The script's server: its gRPC address, metrics URL and log file."""

    grpc_url: str
    metrics_url: str
    log: Path
    proc: subprocess.Popen[bytes]


def _wait_serving(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(url))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"triton-serve.sh exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no SERVING from {url} in {timeout_s} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    try:
        default = REPO / ".venv-triton"
        venv = ensure_triton_venv(Path(os.environ.get("LATENTSERVE_TRITON_VENV", default)))
        layout = TritonLayout.discover(venv)
    except TritonSetupError as exc:
        pytest.fail(f"Triton venv unavailable:\n{exc}", pytrace=False)
    root = tmp_path_factory.mktemp("triton-serve")
    (root / "models").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env |= {
        "PATH": os.pathsep.join([str(layout.server.parent), str(venv / "bin"), env["PATH"]]),
        "LD_LIBRARY_PATH": os.pathsep.join([str(layout.libs), str(layout.python_libdir)]),
        "TRITON_MODEL_REPOSITORY": str(root / "models"),
        "TRITON_ADMIN_KEY": ADMIN_KEY,
    }
    grpc_port, metrics_port = free_port(), free_port()
    log = root / "tritonserver.log"
    extra = [
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        f"--cache-directory={layout.caches}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(DOCKER / "triton-serve.sh"), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    try:
        url = f"127.0.0.1:{grpc_port}"
        _wait_serving(url, proc, log, timeout_s=60)
        yield Started(url, f"http://127.0.0.1:{metrics_port}/metrics", log, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_grpc_health_answers_for_the_probes(started: Started) -> None:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(started.grpc_url))
    assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == SERVING


def test_explicit_model_control_and_no_http(started: Started) -> None:
    log = started.log.read_text()
    assert "MODE_EXPLICIT" in log
    assert "Started GRPCInferenceService" in log
    assert "HTTPService" not in log, "HTTP endpoint started"
    client = triton_grpc.InferenceServerClient(started.grpc_url)
    assert client.is_server_ready()
    client.get_model_repository_index()  # the service's load/unload API stays open


def test_metrics_are_served(started: Started) -> None:
    with urllib.request.urlopen(started.metrics_url, timeout=10) as response:
        assert response.status == 200
        assert b"nv_" in response.read()


@pytest.mark.parametrize("call", ["get_system_shared_memory_status", "get_log_settings"])
def test_admin_protocols_need_the_key(started: Started, call: str) -> None:
    client = triton_grpc.InferenceServerClient(started.grpc_url)
    with pytest.raises(InferenceServerException) as denied:
        getattr(client, call)()
    assert "restricted" in str(denied.value.message())
    getattr(client, call)(headers=ADMIN_HEADER)


def test_sigterm_exits_cleanly(started: Started) -> None:
    os.killpg(started.proc.pid, signal.SIGTERM)
    assert started.proc.wait(timeout=40) == 0
