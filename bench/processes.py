"""A latentserve service in its own process (so the load generator does not share its GIL).

The service is `latentserve serve` run by this interpreter (`python -m bench.serve serve`), fixed
entirely by `LATENTSERVE_*` env settings; with profiling on, py-spy samples it (or, without
py-spy, it runs under cProfile). Example::

    with ServiceProcess("embedded", {"REGISTRY_URI": uri, "DEFAULT_MODEL": "sprites-vae"},
                        log_dir=work) as svc:
        async with AsyncClient(svc.address) as client: ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.config import REPO_ROOT
from bench.probes import process_tree
from bench.profiling import SpyRecorder, py_spy, write_pstats_summary
from latentserve.service.devtools.triton_local import free_port

BASE_ENV = {
    "HOST": "127.0.0.1",
    "LOG_LEVEL": "WARNING",
    "GRACE_PERIOD_S": "1",
    "REGISTRY_POLL_S": "3600",
    "RESPONSE_CACHE_BYTES": "0",
}
"""Settings every benchmark service gets (callers override or add to them). The response
cache is off: load loops repeat seeds across rounds and modes, and would otherwise measure the
cache (the `cache` scenario turns it on for its own service). A service that does not know a
setting ignores it."""


class ServiceError(RuntimeError):
    """The service process did not come up; the message carries its log tail."""


class ServiceProcess:
    """`latentserve serve` as a child process on free 127.0.0.1 ports (see module docstring)."""

    def __init__(self, label: str, settings: dict[str, str], *, log_dir: Path,
                 profile_dir: Path | None = None, ready_timeout_s: float = 180.0) -> None:
        self.label = label
        self.port = free_port()
        self.metrics_port = free_port()
        self.settings = {**BASE_ENV, **settings, "PORT": str(self.port),
                         "METRICS_PORT": str(self.metrics_port)}
        self.log_path = log_dir / f"service-{label}.log"
        self.profile_dir = profile_dir
        self.ready_timeout_s = ready_timeout_s
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spy: SpyRecorder | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def pids(self) -> list[int]:
        """The service process and any worker processes it started (empty once stopped), for
        `bench.probes`."""
        return process_tree(self._proc.pid) if self._proc is not None else []

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        if self.profile_dir is None or py_spy() is not None:
            return [sys.executable, "-m", "bench.serve", "serve"]
        prof = self.profile_dir / f"service-{self.label}.prof"
        return [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "bench.serve", "serve"]

    def start(self) -> ServiceProcess:
        """Start the process and wait until its health says SERVING (default model loaded)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
        env.update({f"LATENTSERVE_{k}": v for k, v in self.settings.items()})
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)
        try:
            self._wait_serving()
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - t0, 2)
        self._start_py_spy()
        return self

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self._proc is None or self._proc.poll() is not None:
                    raise ServiceError(f"service {self.label} exited before serving; "
                                       f"{self.log_path}:\n{self.log_tail()}")
                with contextlib.suppress(grpc.RpcError):
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING and \
                            self._all_workers_ready():
                        return
                if time.monotonic() > deadline:
                    raise ServiceError(f"service {self.label} not serving after "
                                       f"{self.ready_timeout_s:.0f} s; {self.log_path}:\n"
                                       + self.log_tail())
                time.sleep(0.1)

    def _all_workers_ready(self) -> bool:
        """With several worker processes, health answers once the first one is ready; the
        parent announces "… with N workers" once every worker listens on the shared port."""
        workers = int(self.settings.get("WORKERS", "1"))
        if workers <= 1:
            return True
        try:
            return f"with {workers} workers".encode() in self.log_path.read_bytes()
        except OSError:
            return False

    def _start_py_spy(self) -> None:
        if self.profile_dir is not None and self._proc is not None:
            out = self.profile_dir / f"service-{self.label}.folded"
            self._spy = SpyRecorder(self._proc.pid, out).start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (the service drains and exits), SIGKILL after `timeout_s`; write profiles."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._spy is not None:
            self._spy.stop(timeout_s)
            self._spy = None
        self._write_profile_summary()

    def _write_profile_summary(self) -> None:
        if self.profile_dir is None:
            return
        prof = self.profile_dir / f"service-{self.label}.prof"
        if prof.is_file():
            write_pstats_summary(prof, self.profile_dir / f"service-{self.label}.txt")

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-max_chars:].decode(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def known_setting(name: str) -> bool:
    """Whether the service under test (this checkout's `latentserve serve`) has the setting
    `name` (without the LATENTSERVE_ prefix); an unknown one is silently ignored by it."""
    from latentserve.service.settings import Settings

    return name.lower() in Settings.model_fields
