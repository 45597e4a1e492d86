"""`latentserve serve` as a real process for tests: started with env settings, ready once it
announces itself, its stderr lines kept for waiting on log events (no sleeps)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ANNOUNCE = re.compile(r"on (127\.0\.0\.1:\d+).*\(metrics: http://127\.0\.0\.1:(\d+)")


class ServeProcess:
    """One `latentserve serve` process (with its workers, if any)."""

    def __init__(self, registry_uri: str, cache: Path, **settings: object) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
        env.update({"LATENTSERVE_REGISTRY_URI": registry_uri,
                    "LATENTSERVE_DEFAULT_MODEL": "tiny", "LATENTSERVE_CACHE_DIR": str(cache),
                    "LATENTSERVE_PORT": "0", "LATENTSERVE_METRICS_PORT": "0",
                    "LATENTSERVE_LOG_LEVEL": "INFO", "LATENTSERVE_LOG_FORMAT": "json",
                    "LATENTSERVE_ACCESS_LOG": "false", "MLFLOW_DISABLE_TELEMETRY": "true"})
        env.update({f"LATENTSERVE_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from latentserve.cli import main; main()", "serve"],
            env=env, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.address = ""
        self.metrics_port = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout_s: float) -> str:
        """The next stderr line; AssertionError if the process ended or none came in time."""
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError("no output in time:\n" + "".join(self.seen[-40:])) from None
        if line is None:
            raise AssertionError(f"server exited ({self.proc.poll()}):\n"
                                 + "".join(self.seen[-40:]))
        self.seen.append(line)
        return line

    def wait_serving(self, timeout_s: float = 120) -> ServeProcess:
        """Wait for the announce line (every worker is ready then)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = ANNOUNCE.search(self.next_line(max(0.1, deadline - time.monotonic())))
            if found:
                self.address, self.metrics_port = found.group(1), int(found.group(2))
                return self

    def wait_event(self, event: str, timeout_s: float = 120, **fields: Any) -> dict[str, Any]:
        """Wait for a JSON log line with `event` (and the given field values)."""
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.next_line(max(0.1, deadline - time.monotonic()))
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event and all(record.get(k) == v
                                                    for k, v in fields.items()):
                return dict(record)

    def children(self) -> list[int]:
        """Pids of the process's children (its workers)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def terminate(self, timeout_s: float = 120) -> int:
        """SIGTERM, then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        """Kill whatever is left (the process and its workers)."""
        if self.proc.poll() is None:
            for pid in self.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
        self.proc.wait()
