"""Attack regressions, `bundle create` (second pass, item 14): bounded in time and input size,
and every bad input ends in one `error:` line (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.cli import limits
from tests.fixtures.cli import run_cli
from tests.fixtures.tiny import build_tiny_bundle


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("create") / "tiny").decoder_path


def _one_error_line(code: int, output: str, expected: str) -> None:
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert expected in lines[0] and "Traceback" not in output


@pytest.mark.parametrize(("extra", "expected"), [
    (["--out", "/proc/no-such/bundle"], "No such file or directory"),
    (["--decoder", "FIFO"], "is not a regular file"),
], ids=["unwritable out", "fifo decoder"])
def test_bad_inputs_end_in_one_line(decoder: Path, tmp_path: Path, extra: list[str],
                                    expected: str) -> None:
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    args = ["bundle", "create", "--decoder", str(decoder), "--out", str(tmp_path / "b"),
            "--output-range", "0,1", *[str(fifo) if a == "FIFO" else a for a in extra]]
    code, output = run_cli(*args)
    _one_error_line(code, output, expected)


def test_oversized_onnx_is_refused_before_reading(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(bytes(4096))
    monkeypatch.setattr(limits, "MAX_ONNX_BYTES", 1024)
    with pytest.raises(BundleError, match="over the 1024"):
        limits.check_input_file(big, "decoder", limits.MAX_ONNX_BYTES)


def test_time_limit_ends_the_command_with_one_line() -> None:
    # A graph that loops for hours held `bundle create` without end; the watchdog stops it even
    # while the work sits outside Python (here: a sleep, as ONNX Runtime would be).
    script = ("import time\nfrom latentserve.registry.cli.limits import time_limit\n"
              "with time_limit(0.5, 'bundle create'):\n    time.sleep(600)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == limits.EXIT_TIMEOUT
    assert done.stderr.strip() == ("error: bundle create did not finish within 0.5 s "
                                   "(--timeout); stopped")
