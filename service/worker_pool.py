"""Several serving processes on one port: the parent of `LATENTSERVE_WORKERS=N` (N > 1).

The parent serves no RPCs. It starts N `latentserve.service.worker_process` processes with the
same settings; the first binds the port (a free one when port is 0) and the others join it with
SO_REUSEPORT, so the kernel spreads new connections over them. Workers share nothing but the
registry (and a Triton server, if that is the backend): each loads its own models and answers
health checks for itself. The parent:

- serves one /metrics for all workers (prometheus_client multiprocess mode, with a fresh
  `PROMETHEUS_MULTIPROC_DIR` per run, removed at exit);
- forwards SIGHUP (re-resolve aliases now) to every worker;
- on SIGTERM/SIGINT forwards SIGTERM to every worker; each drains as a single server does, and
  the parent exits once all have (SIGKILL for any still running grace_period_s + 15 s later);
- restarts a worker that dies after it was ready (logged at ERROR, its live gauges dropped);
  a restart that fails (e.g. the token file is missing meanwhile) is retried with a delay
  that doubles up to MAX_RESTART_DELAY_S while the other workers keep serving; the parent
  gives up (stops all, exits non-zero) only when no worker serves any more;
- checks every PORT_CHECK_S that only its workers listen on the port (SO_REUSEPORT lets any
  process of the same user join it and take connections): a foreign listener stops the server
  with an error (exit 1) rather than serving beside it (`service.port_owners`);
- at start, a worker that exits before it was ever ready (bad settings, port taken, token
  file missing) fails the whole server: the others are stopped and the parent exits non-zero.

Each worker holds the read end of a lifeline pipe: if the parent dies without forwarding a
signal, the workers see EOF and drain. Example::

    pool = WorkerPool(Settings(workers=2, port=0))
    code = asyncio.run(pool.run(on_ready=lambda port, metrics_port: print(port)))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from latentserve.service.logs import get_logger
from latentserve.service.metrics import serve_multiprocess_http
from latentserve.service.port_owners import foreign_listeners
from latentserve.service.settings import Settings

log = get_logger(__name__)
KILL_AFTER_GRACE_S = 15.0
"""How long past grace_period_s the parent waits for a draining worker before SIGKILL."""
RESTART_DELAY_S = 1.0
"""Pause before restarting a worker that died, so a crash loop does not spin."""
MAX_RESTART_DELAY_S = 30.0
"""Longest pause between two tries to restart a worker whose restarts fail."""
PORT_CHECK_S = 2.0
"""How often the parent checks that only its workers listen on the port."""

ReadyHook = Callable[[int, int], None]
"""Called once with (gRPC port, metrics port or 0) when every worker is ready."""


class WorkerStartError(RuntimeError):
    """A worker exited before it was ready: the server cannot run as configured."""


def worker_env(settings: Settings, slot: int, port: int, metrics_dir: str) -> dict[str, str]:
    """The environment of worker `slot`: every setting as its `LATENTSERVE_*` variable (a
    replica_id gets the slot appended: each worker is a replica of its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    values = settings.model_dump(mode="json")
    values.update(port=port, workers=1, metrics_enabled=False)
    if settings.replica_id:
        values["replica_id"] = f"{settings.replica_id}-w{slot}"
    for name, value in values.items():
        if value is not None:
            env[f"LATENTSERVE_{name.upper()}"] = str(value).lower() if isinstance(
                value, bool) else str(value)
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env


@dataclass(eq=False)
class _Worker:
    """One running worker process and what it has reported."""

    slot: int
    process: asyncio.subprocess.Process
    lifeline: int
    port: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop()
                                      .create_future())
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class WorkerPool:
    """The parent process of N workers (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.port
        self.metrics_port = 0
        self._workers: dict[int, _Worker] = {}
        self._stopping = asyncio.Event()
        self._metrics_dir = ""
        self._metrics_server: Any = None

    async def run(self, on_ready: ReadyHook | None = None) -> int:
        """Run until SIGTERM/SIGINT and every worker has drained; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        self._metrics_dir = tempfile.mkdtemp(prefix="latentserve-metrics-")
        try:
            if self.settings.metrics_enabled:
                self.metrics_port, self._metrics_server = serve_multiprocess_http(
                    self.settings.host, self.settings.metrics_port, self._metrics_dir)
            return await self._supervise(on_ready)
        finally:
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _supervise(self, on_ready: ReadyHook | None) -> int:
        try:
            first = await self._start(0)
            self.port = await self._until_stopped_or_exit(first, first.port)
            for slot in range(1, self.settings.workers):
                await self._start(slot)
            for worker in list(self._workers.values()):
                await self._until_stopped_or_exit(worker, worker.ready.wait())
        except WorkerStartError as exc:
            log.error("worker failed to start; stopping", error=str(exc))
            await self._stop_all()
            return 1
        except _Stopping:
            return await self._stop_all()
        log.info("workers ready", workers=self.settings.workers, port=self.port,
                 metrics_port=self.metrics_port)
        if on_ready is not None:
            on_ready(self.port, self.metrics_port)
        return await self._watch()

    async def _watch(self) -> int:
        """Restart workers that die until a stop signal; then drain them all. A failed restart
        is retried in the background while the other workers serve."""
        stop = asyncio.ensure_future(self._stopping.wait())
        restarts: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                exits = {asyncio.ensure_future(w.process.wait()): w
                         for w in self._workers.values() if w.slot not in restarts}
                tick = asyncio.ensure_future(asyncio.sleep(PORT_CHECK_S))
                done, _ = await asyncio.wait([stop, tick, *exits, *restarts.values()],
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in (tick, *exits):
                    task.cancel()
                if stop in done:
                    return await self._stop_all(restarts)
                foreign = foreign_listeners(self.port,
                                            [w.process.pid for w in self._workers.values()])
                if foreign:
                    log.error("a process outside this server listens on the serving port "
                              "(SO_REUSEPORT): it would receive connections; stopping",
                              port=self.port, sockets=sorted(foreign))
                    return await self._stop_all(restarts, code=1)
                for slot, restart in list(restarts.items()):
                    if restart.done():
                        del restarts[slot]
                        if isinstance(restart.exception(), WorkerStartError):
                            return await self._stop_all(restarts, code=1)
                for finished in done:
                    dead = exits.get(finished)  # type: ignore[arg-type]
                    if dead is None:
                        continue
                    self._forget(dead)
                    log.error("worker died; restarting", slot=dead.slot, pid=dead.process.pid,
                              returncode=dead.process.returncode)
                    restarts[dead.slot] = asyncio.ensure_future(self._restart(dead.slot))
        finally:
            stop.cancel()

    async def _restart(self, slot: int) -> None:
        """Start worker `slot` again until it is ready, waiting longer after each failure;
        WorkerStartError once no other worker serves (the server is down: give up)."""
        delay = RESTART_DELAY_S
        while True:
            await asyncio.sleep(delay)
            try:
                fresh = await self._start(slot)
                await self._until_stopped_or_exit(fresh, fresh.ready.wait())
                return
            except WorkerStartError as exc:
                serving = [w for w in self._workers.values() if w.ready.is_set()]
                if not serving:
                    log.error("restarted worker failed and no worker serves; stopping",
                              error=str(exc))
                    raise
                delay = min(delay * 2, MAX_RESTART_DELAY_S)
                log.error("restarted worker failed to start; the others keep serving",
                          slot=slot, error=str(exc), retry_s=delay, serving=len(serving))

    async def _start(self, slot: int) -> _Worker:
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        os.set_inheritable(ready_w, True)
        os.set_inheritable(life_r, True)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "latentserve.service.worker_process",
                "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
                env=worker_env(self.settings, slot, self.port, self._metrics_dir),
                pass_fds=(ready_w, life_r), stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            os.close(ready_w)
            os.close(life_r)
        worker = _Worker(slot, process, life_w)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker, ready_r))
        self._workers[slot] = worker
        log.info("worker started", slot=slot, pid=process.pid)
        return worker

    async def _read(self, worker: _Worker, fd: int) -> None:
        """Follow a worker's ready pipe: `port <n>`, then `ready`."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
        try:
            while line := await reader.readline():
                word, _, value = line.decode().strip().partition(" ")
                if word == "port" and not worker.port.done():
                    worker.port.set_result(int(value))
                elif word == "ready":
                    worker.ready.set()
                    log.info("worker ready", slot=worker.slot, pid=worker.process.pid)
        finally:
            transport.close()

    async def _until_stopped_or_exit(self, worker: _Worker, awaitable: Any) -> Any:
        """Await `awaitable` unless the worker exits first (WorkerStartError) or a stop signal
        arrives (_Stopping)."""
        wanted = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(worker.process.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([wanted, exited, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exited, stop):
                task.cancel()
        if wanted.done():
            return wanted.result()
        wanted.cancel()
        if self._stopping.is_set():
            raise _Stopping
        self._forget(worker)
        raise WorkerStartError(f"worker {worker.slot} (pid {worker.process.pid}) exited with "
                               f"code {worker.process.returncode} before it was ready")

    def _forget(self, worker: _Worker) -> None:
        """Drop a dead worker: close its lifeline, drop its live gauges."""
        if self._workers.get(worker.slot) is worker:
            del self._workers[worker.slot]
        with contextlib.suppress(OSError):
            os.close(worker.lifeline)
        if worker.reader is not None:
            worker.reader.cancel()
        mark_process_dead(worker.process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]

    def _forward(self, sig: int) -> None:
        for worker in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(sig)

    async def _stop_all(self, restarts: dict[int, asyncio.Task[None]] | None = None, *,
                        code: int = 0) -> int:
        """SIGTERM every worker, wait for each to drain (SIGKILL past the limit); exit code
        (`code`, or 1 if a worker exits non-zero). Pending restarts are cancelled first."""
        for restart in (restarts or {}).values():
            restart.cancel()
            with contextlib.suppress(BaseException):
                await restart
        workers = list(self._workers.values())
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.grace_period_s + KILL_AFTER_GRACE_S
        for worker in workers:
            try:
                async with asyncio.timeout_at(deadline):
                    returncode = await worker.process.wait()
            except TimeoutError:
                log.error("worker did not drain in time; killing", pid=worker.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                returncode = await worker.process.wait()
            if returncode != 0:
                code = 1
            self._forget(worker)
        log.info("workers stopped", code=code)
        return code


class _Stopping(Exception):
    """A stop signal arrived while waiting for a worker."""
