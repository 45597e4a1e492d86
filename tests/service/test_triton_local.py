"""Local tritonserver tooling: venv builder, TritonProcess start failures, `latentserve triton`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latentserve.service.devtools.processes import free_port
from latentserve.service.devtools.triton_cli import app
from latentserve.service.devtools.triton_local import (
    STAMP_FILE,
    TRITON_PINS,
    TritonProcess,
    TritonSetupError,
    ensure_triton_venv,
)

pytestmark = pytest.mark.triton


def test_venv_is_built_once(triton_venv: Path) -> None:
    started = time.monotonic()
    assert ensure_triton_venv(triton_venv) == triton_venv
    assert time.monotonic() - started < 1.0
    assert (triton_venv / STAMP_FILE).read_text().split() == list(TRITON_PINS)
    result = CliRunner().invoke(app, ["venv", "--venv", str(triton_venv)])
    assert result.exit_code == 0, result.output
    assert "ready" in result.output


def test_a_folder_that_is_not_a_venv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(TritonSetupError, match="not a virtual environment"):
        ensure_triton_venv(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_start_failure_raises_with_the_log(triton_venv: Path, tmp_path: Path) -> None:
    server = TritonProcess(tmp_path / "models", venv=triton_venv, load_models=["no_such_model"])
    with pytest.raises(TritonSetupError, match="no_such_model") as failure:
        server.start()
    assert "exited" in str(failure.value)
    assert not server.running
    server.close()


def test_fresh_server_log_is_kept(fresh_triton: TritonProcess, tmp_path: Path) -> None:
    assert fresh_triton.log_path == (tmp_path / "tritonserver.log").absolute()
    assert "Started GRPCInferenceService" in fresh_triton.log_tail()
    assert fresh_triton.running and fresh_triton.pid is not None


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_triton_up_serves_until_terminated(triton_venv: Path, tmp_path: Path) -> None:
    """SIGTERM (what a process manager, or `kill`, sends) stops the server and the command.

    Not SIGINT: a background shell starts its jobs with SIGINT ignored, so the suite must not
    depend on it (issue 15 item 12). Whatever happens, no tritonserver is left running.
    """
    ports = [str(free_port()) for _ in range(3)]
    cmd = [
        sys.executable, "-c", "from latentserve.service.devtools.triton_cli import app; app()",
        "up",
        "--venv", str(triton_venv), "--model-repository", str(tmp_path / "repo"),
        "--grpc-port", ports[0], "--http-port", ports[1], "--metrics-port", ports[2],
        "--log-file", str(tmp_path / "triton.log"),
    ]  # fmt: skip
    # Started as a background shell starts its jobs: SIGINT ignored.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ignore_sigint)
    assert proc.stdout is not None
    seen = []
    found: re.Match[str] | None = None
    try:
        for line in proc.stdout:  # ends when the command exits
            seen.append(line)
            if found := re.search(r"tritonserver pid (\d+) READY", line):
                break
        assert found, "".join(seen)
        server_pid = int(found.group(1))
        url = f"http://127.0.0.1:{ports[1]}/v2/health/ready"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(seen) + proc.stdout.read()
    finally:
        if proc.poll() is None:  # let it stop its server, then make sure
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if found:  # never leave a tritonserver on these ports, whatever failed above
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(found.group(1)), signal.SIGKILL)
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
