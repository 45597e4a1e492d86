"""Profiles for `python -m bench --profile`: py-spy samples when py-spy is installed, cProfile
(main thread only) otherwise; both summarised as text (top functions by own and total time).

py-spy samples every thread of a running process from outside (ONNX Runtime's thread pool
included) without pausing it (`--nonblocking`); its collapsed-stack file (`.folded`) also opens in
speedscope.app or flamegraph.pl. Example::

    with SpyRecorder(pid, Path("profiles/service.folded")):   # samples until the block ends
        ...
    write_folded_summary(Path("profiles/service.folded"), Path("profiles/service.txt"))
    write_pstats_summary(Path("harness.prof"), Path("harness.txt"))

`python -m bench.profiling` profiles the Sample handler alone: the servicer of an in-process
server called directly (no gRPC, no client in the process's CPU), on the bench's model, under
cProfile, with the loop thread's and the process's CPU per request::

    python -m bench.profiling --concurrency 64 --n 1 --out bench/results/profiles/handler.txt
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from latentserve.service.devtools.processes import ChildProcess

SAMPLE_RATE_HZ = 200


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter or on PATH (None when not installed)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


class SpyRecorder:
    """`py-spy record --pid` into a collapsed-stack file, from `start()` until `stop()` (or
    until the target exits), then a text summary beside it. Does nothing without py-spy."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self._child: ChildProcess | None = None

    def start(self) -> SpyRecorder:
        spy = py_spy()
        if spy is None:
            return self
        self._child = ChildProcess("py-spy", log_path=self.out.with_suffix(".py-spy.log"))
        self._child.start([spy, "record", "--pid", str(self.pid), "--rate", str(SAMPLE_RATE_HZ),
                           "--threads", "--nonblocking", "--format", "raw",
                           "--output", str(self.out)])
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask py-spy to write its output (SIGINT) unless the target already ended it."""
        child, self._child = self._child, None
        if child is None:
            return
        child.stop(timeout_s, sig=signal.SIGINT)
        if self.out.is_file():
            write_folded_summary(self.out, self.out.with_suffix(".txt"))

    def __enter__(self) -> SpyRecorder:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _frame(raw: str) -> str:
    """`func (path/to/file.py:123)` → `func (file.py)`: one name per function."""
    name, _, where = raw.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def write_folded_summary(folded: Path, out: Path, top: int = 40) -> None:
    """Top functions of a py-spy collapsed-stack file by own samples and by total samples
    (a function counted once per stack), plus samples per thread."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        threads[frames[0]] += count
        names = [_frame(f) for f in frames[1:]] or [frames[0]]
        own[names[-1]] += count
        for name in set(names):
            total[name] += count
    lines = [f"{samples} samples at {SAMPLE_RATE_HZ} Hz ({samples / SAMPLE_RATE_HZ:.1f} s of "
             "thread time, idle threads excluded)", "", "== samples per thread =="]
    lines += [f"{c:8d} {100 * c / max(samples, 1):5.1f}%  {t}" for t, c in threads.most_common()]
    for title, counter in (("own", own), ("total (incl. callees)", total)):
        lines += ["", f"== top {top} by {title} samples =="]
        lines += [f"{c:8d} {100 * c / max(samples, 1):5.1f}%  {name}"
                  for name, c in counter.most_common(top)]
    out.write_text("\n".join(lines) + "\n")


def write_pstats_summary(prof: Path, out: Path, top: int = 40) -> None:
    """The top functions of a cProfile file by own time and by cumulative time, as text."""
    with open(out, "w") as stream:
        stats = pstats.Stats(str(prof), stream=stream)
        stats.strip_dirs()
        for key in ("tottime", "cumulative"):
            stream.write(f"==== top {top} by {key} ====\n")
            stats.sort_stats(key).print_stats(top)


class _Context:
    """The two calls the handler wrapper makes on a gRPC context, without a call behind them."""

    def time_remaining(self) -> None:
        return None

    async def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(f"request failed: {status}")


async def profile_handler(out: Path, *, concurrency: int, n: int, seconds: float,
                          output: str) -> str:
    """Sample requests (n items each, `concurrency` at once) straight into the servicer for
    `seconds` under cProfile; writes the summary to `out` and returns the CPU line."""
    from bench.config import RunConfig
    from bench.stack import Stack
    from latentserve.service.logs import configure_logging
    from latentserve.service.server import LatentServer
    from latentserve.service.settings import Settings
    from latentserve.v1 import generator_pb2 as pb

    configure_logging("WARNING")
    stack = Stack(RunConfig(model="auto", work_dir=Path(tempfile.mkdtemp(prefix="handler-"))))
    env = {k.lower(): v for k, v in stack.service_settings().items()}
    server = LatentServer(Settings.model_validate(
        {**env, "port": 0, "metrics_port": 0, "response_cache_bytes": 0}))
    await server.start()
    await server.manager.wait_ready()
    servicer, context = server.servicer, _Context()
    assert servicer is not None
    fmt = pb.OutputFormat.Value(f"OUTPUT_FORMAT_{output.upper()}")
    requests = [pb.SampleRequest(model=pb.ModelRef(name=stack.model.name), n=n, seed=i,
                                 output=fmt, class_labels=stack.model.labels(n, i) or [])
                for i in range(256)]

    async def worker(first: int, stop: float) -> int:
        done = 0
        while time.perf_counter() < stop:
            await servicer.Sample(requests[(first + done * concurrency) % 256], context)
            done += 1
        return done

    profiler = cProfile.Profile()
    for measured in (False, True):
        stop = time.perf_counter() + (seconds if measured else 0.5)
        loop0, cpu0 = time.thread_time(), time.process_time()
        if measured:
            profiler.enable()
        served = sum(await asyncio.gather(*(worker(k, stop) for k in range(concurrency))))
        profiler.disable()
        loop_ms = (time.thread_time() - loop0) * 1000 / served
        cpu_ms = (time.process_time() - cpu0) * 1000 / served
    await server.stop(1.0)
    prof = out.with_suffix(".prof")
    profiler.dump_stats(prof)
    write_pstats_summary(prof, out)
    prof.unlink()
    line = (f"Sample n={n} {output}, {concurrency} at once, {served} requests under cProfile: "
            f"loop thread {loop_ms:.3f} ms, process {cpu_ms:.3f} ms of CPU per request")
    out.write_text(line + "\n\n" + out.read_text())
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile the Sample handler in-process.")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--output", default="float32",
                        choices=["float32", "uint8", "png", "latents_only"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(asyncio.run(profile_handler(args.out, concurrency=args.concurrency, n=args.n,
                                      seconds=args.seconds, output=args.output)))


if __name__ == "__main__":
    main()
