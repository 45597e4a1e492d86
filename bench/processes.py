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
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.config import REPO_ROOT
from bench.probes import process_tree
from bench.profiling import SpyRecorder, py_spy, write_pstats_summary
from latentserve.service.devtools.processes import ChildProcess, free_port

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
        self._child = ChildProcess(f"service {label}", log_path=self.log_path, error=ServiceError)
        self._stopped = False
        self._spy: SpyRecorder | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def pids(self) -> list[int]:
        """The service process and any worker processes it started (empty once stopped), for
        `bench.probes`."""
        pid = self._child.pid
        return process_tree(pid) if pid is not None and not self._stopped else []

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
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self._child.start(self.command(), env=env, cwd=REPO_ROOT)
        self._stopped = False
        try:
            with grpc.insecure_channel(self.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                self._child.wait_until(lambda: self._serving(health), self.ready_timeout_s,
                                       "serving")
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - t0, 2)
        self._start_py_spy()
        return self

    def _serving(self, health: health_pb2_grpc.HealthStub) -> bool:
        """Health says SERVING and every worker process is ready."""
        with contextlib.suppress(grpc.RpcError):
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            return reply.status == health_pb2.HealthCheckResponse.SERVING and \
                self._all_workers_ready()
        return False

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
        if self.profile_dir is not None and self._child.pid is not None:
            out = self.profile_dir / f"service-{self.label}.folded"
            self._spy = SpyRecorder(self._child.pid, out).start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (the service drains and exits), SIGKILL after `timeout_s`; write profiles."""
        if self._child.proc is None or self._stopped:
            return
        self._stopped = True
        self._child.stop(timeout_s)
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
        return self._child.output_tail(max_chars)

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
