"""Bounds of the bundle commands: input file sizes, and a wall-clock limit that ends a command
with one `error:` line instead of running (or hanging) without end.

Building a bundle runs the caller's ONNX graphs (checks, a preview grid); a graph can loop for
hours or ask for an enormous output. Example::

    check_input_file(decoder, "decoder")         # a regular file under MAX_ONNX_BYTES
    with time_limit(600, "bundle create"):
        build_bundle(...)
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from latentserve.registry.bundle.spec import BundleError

MAX_ONNX_BYTES = 2 * 1024**3
"""Largest ONNX file read whole (protobuf's own limit; larger models keep external data)."""
EXIT_TIMEOUT = 2
"""Exit status of a command stopped by its time limit (the commands' error status)."""


def check_input_file(path: Path, what: str, limit: int = MAX_ONNX_BYTES) -> None:
    """BundleError unless `path` is a regular file of at most `limit` bytes (a FIFO or device
    would block or never end)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise BundleError(f"{what}: {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{what}: {path} is not a regular file")
    if info.st_size > limit:
        raise BundleError(f"{what}: {path} has {info.st_size} bytes, over the {limit} an ONNX "
                          "file may have (keep larger weights as external data)")


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Run the block; past `seconds` print one `error:` line and end the process (status 2).

    A watchdog thread, because the work may sit inside ONNX Runtime, where no Python signal
    handler runs until it returns."""
    if seconds <= 0:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            sys.stderr.write(f"error: {what} did not finish within {seconds:g} s (--timeout); "
                             "stopped\n")
            sys.stderr.flush()
            os._exit(EXIT_TIMEOUT)

    watchdog = threading.Thread(target=watch, name="time-limit", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        done.set()
