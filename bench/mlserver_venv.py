"""`.venv-mlserver`: the virtual environment the `peers` scenario runs Seldon MLServer from.

MLServer (with its MLflow runtime) is a peer under test, never imported by the harness: its
protobuf package `inference` clashes with tritonclient's in one process, so it lives in its own
venv, built on first use like `.venv-triton` (a stamp file records the pins; a lock file makes
concurrent builds safe). Example::

    venv = ensure_mlserver_venv(Path(".venv-mlserver"))    # minutes the first time, ms after
    existing_mlserver_venv(Path(".venv-mlserver"))         # the venv when built, else None
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.config import REPO_ROOT

DEFAULT_VENV = Path(os.environ.get("LATENTSERVE_MLSERVER_VENV", REPO_ROOT / ".venv-mlserver"))
TORCH_PIN = "torch==2.13.0"
"""Installed first and alone: an exact pin resolves to the CPU wheel; a dependency pulling
torch later would otherwise be free to fetch a CUDA build."""
MLSERVER_PINS: tuple[str, ...] = (
    "mlserver==1.7.1",
    "mlserver-mlflow==1.7.1",
    "mlflow==3.17.2",
    "onnx",
    "onnxruntime",
    "uvloop==0.21.0",
)
"""uvloop 0.22+ kills MLServer 1.7.1's parallel worker at start (no current event loop)."""
STAMP_FILE = "latentserve-mlserver.stamp"


class MLServerSetupError(RuntimeError):
    """The MLServer venv could not be built; the message carries pip's output tail."""


def _wanted() -> str:
    return "\n".join((TORCH_PIN, *MLSERVER_PINS)) + "\n"


def existing_mlserver_venv(path: Path = DEFAULT_VENV) -> Path | None:
    """`path` when it holds a finished build with the current pins, else None (builds nothing)."""
    stamp = path.absolute() / STAMP_FILE
    ok = stamp.is_file() and stamp.read_text() == _wanted()
    return path.absolute() if ok and (path / "bin" / "mlserver").exists() else None


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise MLServerSetupError(f"{what} failed (exit {done.returncode}):\n"
                                 f"{(done.stdout + done.stderr)[-4000:]}")


def ensure_mlserver_venv(path: Path = DEFAULT_VENV) -> Path:
    """Build the MLServer venv at `path` unless its stamp matches the pins; returns it."""
    path = path.absolute()
    lock_name = f"latentserve-mlserver-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if existing_mlserver_venv(path) is not None:
            return path
        if path.exists() and any(path.iterdir()) and not (path / "pyvenv.cfg").exists():
            raise MLServerSetupError(f"{path} exists and is not a virtual environment")
        _run([sys.executable, "-m", "venv", "--clear", str(path)], "venv")
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
               "--disable-pip-version-check"]
        _run([*pip, TORCH_PIN], f"pip install {TORCH_PIN}")
        _run([*pip, *MLSERVER_PINS], "pip install mlserver")
        (path / STAMP_FILE).write_text(_wanted())
    return path


if __name__ == "__main__":
    print(ensure_mlserver_venv())
