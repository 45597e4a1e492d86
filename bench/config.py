"""Run configuration of one benchmark invocation: quick or full, where results go, profiling.

Every duration and request count a scenario uses comes from `RunConfig.pick(full, quick)`, so
quick mode (the harness smoke test) shrinks all of them in one place. Example::

    cfg = RunConfig(quick=True, out_dir=Path("/tmp/bench"))
    seconds = cfg.pick(4.0, 0.3)        # 0.3 in quick mode
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
QUICK_OUT = DEFAULT_OUT / "quick"
DEFAULT_REPORT = REPO_ROOT / "bench" / "RESULTS.md"
ZOO_SPRITES = REPO_ROOT / "generators" / "zoo" / "sprites-vae"
BENCH_CACHE = REPO_ROOT / ".latentserve" / "bench-cache"
"""Files the bench derives once and reuses across runs (the realistic decoder's ONNX export)."""

ModelChoice = Literal["auto", "zoo", "tiny", "realistic"]
T = TypeVar("T", int, float)


@dataclass(frozen=True)
class RunConfig:
    """What one `python -m bench` run does and where it writes.

    `model`: "auto" uses generators/zoo/sprites-vae when it exists, else a tiny analytic
    stand-in of the same size; "zoo"/"tiny" force one; "realistic" serves the DCGAN-tutorial
    decoder (`bench.realistic`) in every scenario. `profile` samples the service processes
    and the harness with py-spy (cProfile without it) into `<out_dir>/profiles/`.
    `service_settings` (`--set KEY=VALUE`, without the LATENTSERVE_ prefix) override the
    settings of every service the run starts, e.g. {"INTRA_OP_THREADS": "1"}.
    """

    quick: bool = False
    out_dir: Path = DEFAULT_OUT
    report_path: Path = DEFAULT_REPORT
    model: ModelChoice = "auto"
    profile: bool = False
    work_dir: Path = field(default_factory=lambda: Path("/tmp"))
    service_settings: dict[str, str] = field(default_factory=dict)

    def pick(self, full: T, quick: T) -> T:
        """`quick` in quick mode, else `full`."""
        return quick if self.quick else full

    @property
    def profile_dir(self) -> Path:
        return self.out_dir / "profiles"
