"""The checked-in stubs in proto/latentserve/v1 are exactly what `make proto` generates."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PACKAGE = PROTO_ROOT / "latentserve" / "v1"
GENERATED = [
    "generator_pb2.py",
    "generator_pb2.pyi",
    "generator_pb2_grpc.py",
    "generator_pb2_grpc.pyi",
]


def _plugin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the dev extra (mypy-protobuf)")
    return found


def regenerate(out: Path) -> None:
    """The `make proto` command, writing into `out` instead of proto/."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE.glob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    done = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"protoc failed:\n{done.stderr}"


def test_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    regenerate(tmp_path)
    tools = ", ".join(
        f"{d} {importlib.metadata.version(d)}" for d in ("grpcio-tools", "mypy-protobuf")
    )
    stale = [
        name
        for name in GENERATED
        if not (PACKAGE / name).exists()
        or (PACKAGE / name).read_bytes() != (tmp_path / "latentserve" / "v1" / name).read_bytes()
    ]
    assert not stale, (
        f"{', '.join(stale)} in proto/latentserve/v1 differ from what generator.proto gives "
        f"(generated with {tools}): run `make proto` and commit the result"
    )
    extra = sorted(p.name for p in (tmp_path / "latentserve" / "v1").iterdir())
    assert extra == sorted(GENERATED), f"protoc now writes {extra}; update GENERATED and make proto"
