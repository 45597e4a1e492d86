"""Facts about the machine and the code a benchmark ran on (recorded next to every number).

Example::

    facts = machine_facts()
    facts["cpu_model"], facts["logical_cpus"], facts["git"]["commit"]
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.config import REPO_ROOT

PACKAGES = ("latentserve", "onnxruntime", "grpcio", "protobuf", "numpy", "mlflow",
            "tritonclient", "matplotlib")


def _first_match(path: Path, key: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _cgroup_cpus() -> float | None:
    """CPUs granted by a cgroup v2 quota (`cpu.max`), None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else round(int(quota) / int(period), 2)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_facts() -> dict[str, Any]:
    """HEAD commit and whether the working tree differs from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None
            else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts() -> dict[str, Any]:
    """CPU, memory, OS, interpreter, package versions, git commit, current load."""
    mem_kb = _first_match(Path("/proc/meminfo"), "MemTotal")
    return {
        "cpu_model": _first_match(Path("/proc/cpuinfo"), "model name") or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cgroup_cpus": _cgroup_cpus(),
        "memory_gib": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "git": git_facts(),
        "load_average": load_average(),
    }
