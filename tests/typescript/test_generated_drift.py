"""The checked-in TypeScript code in clients/typescript/src/gen is what `make proto` generates
from proto/latentserve/v1 (protoc-gen-es from the package's pinned devDependencies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.typescript.node import PACKAGE, node_or_skip

ROOT = PACKAGE.parents[1]
GENERATED = PACKAGE / "src" / "gen" / "latentserve" / "v1" / "generator_pb.ts"


def test_generated_typescript_matches_the_proto(tmp_path: Path) -> None:
    node_or_skip()
    plugin = PACKAGE / "node_modules" / ".bin" / "protoc-gen-es"
    if not plugin.exists():
        pytest.skip("clients/typescript/node_modules is not installed (npm ci there, or make "
                    "test, installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--plugin=protoc-gen-es={plugin}", f"--es_out={tmp_path}", "--es_opt=target=ts",
         str(ROOT / "proto" / "latentserve" / "v1" / "generator.proto")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "latentserve" / "v1" / "generator_pb.ts"
    assert fresh.read_bytes() == GENERATED.read_bytes(), (
        "clients/typescript/src/gen is stale: run `make proto` and commit the result")
