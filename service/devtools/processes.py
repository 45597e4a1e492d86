"""Child processes for development tools, tests and benchmarks, one way: a free port, a process
started with its output in a log file (or read line by line), waited on until it is ready, and
stopped with a signal (SIGTERM) then SIGKILL. Example::

    port = free_port()
    server = ChildProcess("echo server", log_path=Path("echo.log"))
    server.start(["python", "-m", "echo", "--port", str(port)])
    server.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ready"), 30.0, "ready")
    server.stop(timeout_s=10.0)          # SIGTERM, SIGKILL after 10 s; returns the exit code

Without `log_path` the output is piped and read line by line (`next_line`, `wait_for_line`):
for processes that announce readiness or events on their output.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

__all__ = ["ChildProcess", "ProcessError", "free_port", "http_ok"]


class ProcessError(RuntimeError):
    """A child process ended, or did not get ready in time; the message carries its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET `url` answers 200 now (False on any other answer or no answer)."""
    with (
        contextlib.suppress(urllib.error.URLError, OSError),
        urllib.request.urlopen(url, timeout=timeout_s) as response,
    ):
        return bool(response.status == 200)
    return False


class ChildProcess:
    """One child process: started, waited on until ready, stopped (see module docstring).

    `own_group` starts it in a new session: signals may go to the whole process group (its
    children too) and a stop kills what is left of the group. `error` is the exception type
    raised for an early exit or a timeout (a `ProcessError` unless the caller names its own).
    """

    def __init__(self, name: str, *, log_path: Path | None = None, own_group: bool = False,
                 error: type[Exception] = ProcessError) -> None:
        self.name = name
        self.log_path = log_path
        self.own_group = own_group
        self.error = error
        self.proc: subprocess.Popen[Any] | None = None
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> ChildProcess:
        """Start `command` with stdin closed and stderr merged into stdout."""
        self.seen = []
        self._lines = queue.Queue()
        with contextlib.ExitStack() as stack:
            log = None if self.log_path is None else stack.enter_context(self._open_log())
            self.proc = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=log or subprocess.PIPE,
                stderr=subprocess.STDOUT, text=log is None, env=None if env is None else dict(env),
                cwd=cwd, start_new_session=self.own_group)
        if log is None:
            assert self.proc.stdout is not None
            threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _open_log(self) -> IO[bytes]:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.log_path, "ab")

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    # -- readiness ---------------------------------------------------------------------------

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, state: str = "ready", *,
                   interval_s: float = 0.1) -> None:
        """Poll `ready()` until true; raise `error` (with the output tail) if the process exits
        first or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                raise self._failure(f"exited (code {self.returncode}) before {state}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self._failure(f"not {state} after {timeout_s:.0f} s")
            time.sleep(interval_s)

    def next_line(self, timeout_s: float) -> str:
        """The next line of piped output; `error` if the process ended or none came in time."""
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise self._failure("wrote no line in time") from None
        if line is None:
            self._lines.put(None)  # every later call sees the end too
            raise self._failure(f"exited (code {self.proc.poll() if self.proc else None})")
        self.seen.append(line)
        return line

    def wait_for_line(self, match: Callable[[str], T | None], timeout_s: float) -> T:
        """Read piped lines until `match(line)` returns something other than None; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = match(self.next_line(max(0.1, deadline - time.monotonic())))
            if found is not None:
                return found

    # -- signals and stopping ----------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def send_signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        """Send `sig` to the process, or to its whole group (`own_group` processes only)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group and self.own_group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)

    def children(self) -> list[int]:
        """Pids of the process's direct children (empty when it has none or has ended)."""
        if self.proc is None:
            return []
        try:
            path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def stop(self, timeout_s: float = 10.0, *, sig: signal.Signals = signal.SIGTERM,
             group: bool = False) -> int | None:
        """`sig` (to the group with `group`), SIGKILL after `timeout_s`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig, group=group)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_leftovers()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the process and its children (its whole group with `own_group`)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if not self.own_group:
                for pid in self.children():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            self.send_signal(signal.SIGKILL, group=True)
            self.proc.wait()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """What outlived the main process in its group (python-backend stubs, workers)."""
        if self.own_group:
            self.send_signal(signal.SIGKILL, group=True)

    def wait(self) -> int:
        """Block until the process exits; its exit code."""
        if self.proc is None:
            raise self.error(f"{self.name} was never started")
        return self.proc.wait()

    # -- output ------------------------------------------------------------------------------

    def output_tail(self, max_chars: int = 4000) -> str:
        """The end of the output: the log file, or the piped lines read so far."""
        if self.log_path is None:
            return "".join(self.seen)[-max_chars:]
        try:
            return self.log_path.read_bytes()[-max_chars:].decode(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"

    def _failure(self, what: str) -> Exception:
        where = f"; {self.log_path}" if self.log_path is not None else ""
        return self.error(f"{self.name} {what}{where}:\n{self.output_tail()}")
