"""One worker process of a multi-process server (`LATENTSERVE_WORKERS` > 1); the parent,
`latentserve.service.worker_pool.WorkerPool`, starts it as::

    python -m latentserve.service.worker_process --ready-fd 5 --lifeline-fd 6

Settings come from the `LATENTSERVE_*` environment the parent sets. The worker binds the shared
port with SO_REUSEPORT, writes `port <n>` and later `ready` (default model served) to the ready
pipe, re-resolves aliases on SIGHUP, and drains and exits on SIGTERM or when the lifeline pipe
closes (the parent is gone). Its metrics go to `PROMETHEUS_MULTIPROC_DIR`; the parent serves
them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from pydantic import ValidationError

from latentserve.service.auth import TokenFileError
from latentserve.service.event_loop import run as run_loop
from latentserve.service.logs import configure_logging, get_logger
from latentserve.service.server import LatentServer
from latentserve.service.settings import Settings
from latentserve.service.startup_errors import StartupError, settings_error_line

log = get_logger(__name__)


async def run_worker(settings: Settings, ready_fd: int, lifeline_fd: int) -> None:
    """Serve until SIGTERM or the parent's exit, reporting the port and readiness."""
    server = LatentServer(settings, reuse_port=True)
    await server.start()
    server.refresh_on_sighup()
    os.write(ready_fd, f"port {server.port}\n".encode())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def lifeline() -> None:  # readable only at EOF: the parent closed its end or died
        log.warning("parent process gone; draining")
        loop.remove_reader(lifeline_fd)
        stop.set()

    loop.add_reader(lifeline_fd, lifeline)

    async def announce_ready() -> None:
        await server.manager.wait_ready()
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"ready\n")

    ready = loop.create_task(announce_ready())
    await server.wait_for_shutdown_signal(stop)
    ready.cancel()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process."""
    parser = argparse.ArgumentParser(prog="latentserve.service.worker_process")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        settings = Settings.model_validate({})
    except ValidationError as exc:
        sys.exit(f"error: {settings_error_line(exc)}")
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_loop(run_worker(settings, args.ready_fd, args.lifeline_fd), settings.event_loop)
    except (TokenFileError, StartupError, OSError) as exc:  # one line; the parent reports it
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
