"""A local CPU `tritonserver` for tests and development: its own venv and a process wrapper.

The `nvidia-pytriton` wheel ships a Triton server (python backend only) that needs numpy < 2, so
it lives in a separate venv built from pinned packages; the service talks to it over gRPC from
the main venv. Example::

    venv = ensure_triton_venv()                    # builds .venv-triton once (stamp file)
    with TritonProcess(Path("triton-repo"), venv=venv) as server:
        print(server.grpc_url, server.metrics_url)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from latentserve.service.devtools.processes import ChildProcess, free_port, http_ok

TRITON_PINS: tuple[str, ...] = (
    "nvidia-pytriton==0.7.0",
    "numpy==1.26.4",
    "onnxruntime==1.32.0",
)
"""`.venv-triton`: the server wheel (Triton 2.51) and what the python-flavour model needs."""

DEFAULT_VENV = Path(".venv-triton")
STAMP_FILE = "latentserve-triton.stamp"
_SHM_DIR = Path("/dev/shm")


class TritonSetupError(RuntimeError):
    """The Triton venv could not be built or the server could not start; the message says why."""


@dataclass(frozen=True)
class TritonLayout:
    """Where the pieces of the wheel's server live inside a built venv."""

    venv: Path
    python_version: str  # "3.11"
    python_libdir: Path  # holds libpythonX.Y.so for the python backend stub
    root: Path  # <site-packages>/pytriton/tritonserver
    libs: Path  # <site-packages>/nvidia_pytriton.libs

    @property
    def server(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "backends" / "python"

    @property
    def stub(self) -> Path:
        return (
            self.root / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"
        )

    @property
    def caches(self) -> Path:
        return self.root / "caches"

    @classmethod
    def discover(cls, venv: Path) -> TritonLayout:
        """Ask the venv's interpreter where things are; TritonSetupError names what is missing."""
        python = venv / "bin" / "python"
        probe = (
            "import sys, sysconfig; print(sysconfig.get_paths()['purelib']); "
            "print(sysconfig.get_config_var('LIBDIR')); print('%d.%d' % sys.version_info[:2])"
        )
        try:
            out = subprocess.run(
                [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
            ).stdout.split("\n")
        except (OSError, subprocess.SubprocessError) as exc:
            raise TritonSetupError(
                f"{python}: cannot run the Triton venv's python ({exc})"
            ) from None
        site = Path(out[0])
        layout = cls(venv, out[2], Path(out[1]), site / "pytriton" / "tritonserver",
                     site / "nvidia_pytriton.libs")  # fmt: skip
        for needed in (layout.server, layout.python_backend, layout.stub, layout.libs):
            if not needed.exists():
                raise TritonSetupError(f"{needed}: missing from the Triton venv {venv}")
        return layout


def _run_logged(cmd: Sequence[str], what: str) -> None:
    """Run a build step; on failure raise with the tail of its output."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise TritonSetupError(f"{what} failed (exit {done.returncode}):\n{tail}")


def ensure_triton_venv(path: Path = DEFAULT_VENV, *, python: str | None = None) -> Path:
    """Build the Triton venv at `path` with TRITON_PINS unless its stamp already matches.

    Idempotent and safe to call from several processes at once (a lock file in the temp dir).
    Example::

        venv = ensure_triton_venv(Path(".venv-triton"))   # minutes the first time, ms after
    """
    path = path.absolute()
    wanted = "\n".join(TRITON_PINS) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_name = f"latentserve-venv-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = path / STAMP_FILE
        if stamp.exists() and stamp.read_text() == wanted and (path / "bin" / "python").exists():
            return path
        if path.exists() and any(path.iterdir()) and not (path / "pyvenv.cfg").exists():
            raise TritonSetupError(f"{path} exists and is not a virtual environment; move it away")
        _run_logged([python or sys.executable, "-m", "venv", "--clear", str(path)], "venv")
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input"]
        _run_logged([*pip, "--disable-pip-version-check", *TRITON_PINS], "pip install")
        TritonLayout.discover(path)
        stamp.write_text(wanted)
    return path


class TritonProcess:
    """One `tritonserver` child process on 127.0.0.1, with the CPU start-up recipe applied.

    Ports left at 0 are picked free once and kept across `restart()`. Example::

        with TritonProcess(repo, venv=ensure_triton_venv()) as server:
            server.pause(); server.resume()      # SIGSTOP / SIGCONT the whole process group
            server.kill(); server.restart()      # same ports
    """

    def __init__(
        self,
        model_repository: Path | None = None,
        *,
        venv: Path = DEFAULT_VENV,
        grpc_port: int = 0,
        http_port: int = 0,
        metrics_port: int = 0,
        model_control: Literal["explicit", "none", "poll"] = "explicit",
        load_models: Sequence[str] = (),
        log_path: Path | None = None,
        ready_timeout_s: float = 60.0,
        log_verbose: int = 0,
    ) -> None:
        self.layout = TritonLayout.discover(venv.absolute())
        self._workdir = Path(tempfile.mkdtemp(prefix="latentserve-triton-"))
        self.model_repository = (model_repository or self._workdir / "models").absolute()
        self.model_repository.mkdir(parents=True, exist_ok=True)
        ports = [grpc_port or free_port(), http_port or free_port(), metrics_port or free_port()]
        while len(set(ports)) < 3:
            ports[2] = free_port()
        self.grpc_port, self.http_port, self.metrics_port = ports
        self.model_control = model_control
        self.load_models = tuple(load_models)
        self.log_path = (log_path or self._workdir / "tritonserver.log").absolute()
        self.ready_timeout_s = ready_timeout_s
        self.log_verbose = log_verbose
        self._shm_prefix = f"latentserve_{uuid.uuid4().hex[:12]}_"
        self._child = ChildProcess("tritonserver", log_path=self.log_path, own_group=True,
                                   error=TritonSetupError)
        self._paused = False

    # -- addresses ---------------------------------------------------------------------------

    @property
    def grpc_url(self) -> str:
        """host:port for tritonclient.grpc."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child.running

    # -- lifecycle ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The server's command line."""
        backends = self._workdir / "backends"
        cmd = [
            str(self.layout.server),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--cache-directory={self.layout.caches}",
            f"--model-control-mode={self.model_control}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false", "--exit-on-error=true", "--strict-readiness=true",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            f"--log-verbose={self.log_verbose}",
        ]  # fmt: skip
        return cmd + [f"--load-model={name}" for name in self.load_models]

    def environment(self) -> dict[str, str]:
        """The server's environment: bundled libs + libpython on the loader path, venv bin first."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        libs = [str(self.layout.libs), str(self.layout.python_libdir)]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            libs + [p for p in [env.get("LD_LIBRARY_PATH")] if p]
        )
        env["PATH"] = os.pathsep.join([str(self.layout.venv / "bin"), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(self.layout.venv)
        return env

    def start(self) -> TritonProcess:
        """Start the server and wait until it is READY; TritonSetupError carries the log tail."""
        if self.running:
            raise TritonSetupError(f"tritonserver already running (pid {self.pid})")
        backends = self._workdir / "backends"
        if not (backends / "python" / self.layout.stub.name).exists():
            shutil.copytree(self.layout.python_backend, backends / "python", dirs_exist_ok=True)
            shutil.copy2(self.layout.stub, backends / "python" / self.layout.stub.name)
        self._child.start(self.command(), env=self.environment(), cwd=self._workdir)
        self._paused = False
        try:
            self.wait_ready(self.ready_timeout_s)
        except TritonSetupError:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Poll HTTP /v2/health/ready until 200; fail on exit or timeout with the log tail."""
        url = f"{self.http_url}/v2/health/ready"
        self._child.wait_until(lambda: http_ok(url), timeout_s, "READY", interval_s=0.05)

    def wait(self) -> int:
        """Block until the server exits; returns its exit code."""
        return self._child.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL for the whole group after `timeout_s`."""
        if self._paused and self.running:
            self._child.send_signal(signal.SIGCONT, group=True)
        self._child.stop(timeout_s)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and its python-backend stubs at once (a crash, for tests)."""
        self._child.kill()
        self._reap()

    def pause(self) -> None:
        """SIGSTOP the server and its stubs: connections stay open, nothing answers."""
        self._child.send_signal(signal.SIGSTOP, group=True)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        self._child.send_signal(signal.SIGCONT, group=True)
        self._paused = False

    def restart(self) -> TritonProcess:
        """Stop (if running) and start again on the same ports; models must be loaded again."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server; remove its scratch folder (and the log unless `log_path` was given)."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> TritonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, max_chars: int = 6000) -> str:
        """The end of the server log (what a failed start or test should show)."""
        return self._child.output_tail(max_chars)

    # -- internals ---------------------------------------------------------------------------

    def _reap(self) -> None:
        """Drop the python backend's shared-memory regions (the stubs are gone with the group)."""
        self._paused = False
        for region in _shm_regions(self._shm_prefix):
            with contextlib.suppress(OSError):
                region.unlink()


def _shm_regions(prefix: str) -> Iterator[Path]:
    if _SHM_DIR.is_dir():
        yield from _SHM_DIR.glob(f"{prefix}*")
