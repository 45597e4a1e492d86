"""Helpers of the TypeScript client tests: the package folder, Node, an installed and built
package (`npm ci` when node_modules is missing, then `npm run build`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def node_or_skip() -> str:
    """The node executable; skips (saying why) where Node is not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the TypeScript client tests need Node >= 18 and npm")
    return node


def built_package() -> Path:
    """clients/typescript, installed (npm ci) and built (tsc + the browser bundle)."""
    node_or_skip()
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not"
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    done = subprocess.run([npm, "run", "build"], cwd=PACKAGE, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"npm run build failed:\n{done.stdout}\n{done.stderr}"
    return PACKAGE
