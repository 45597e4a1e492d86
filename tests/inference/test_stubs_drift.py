"""The checked-in OIP stubs in proto/inference are exactly what `make proto` generates, and they
import beside tritonclient, which registers the same `inference.*` names in the default pool."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PACKAGE = PROTO_ROOT / "inference"
GENERATED = ["grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi"]
OWN_POOL = ("_descriptor_pool.Default().AddSerializedFile",
            "_descriptor_pool.DescriptorPool().AddSerializedFile")
"""The Makefile's post-processing: the messages go to a descriptor pool of their own."""


def regenerate(out: Path) -> None:
    """`make proto`'s OIP step, writing into `out` instead of proto/."""
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    found = str(plugin) if plugin.exists() else shutil.which("protoc-gen-mypy")
    if found is None:
        pytest.fail("protoc-gen-mypy not found: install the dev extra (mypy-protobuf)")
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}",
           f"--plugin=protoc-gen-mypy={found}", f"--mypy_out={out}",
           "inference/grpc_predict_v2.proto"]
    done = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"protoc failed:\n{done.stderr}"
    module = out / "inference" / "grpc_predict_v2_pb2.py"
    module.write_text(module.read_text().replace(*OWN_POOL))


def test_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    regenerate(tmp_path)
    stale = [name for name in GENERATED
             if (PACKAGE / name).read_bytes() != (tmp_path / "inference" / name).read_bytes()]
    assert not stale, f"{stale} in proto/inference are stale: run `make proto` and commit them"
    assert sorted(p.name for p in (tmp_path / "inference").iterdir()) == sorted(GENERATED)


def test_stubs_import_beside_tritonclient() -> None:
    code = ("import tritonclient.grpc as t\n"
            "from latentserve.inference import grpc_predict_v2_pb2 as o\n"
            "r = o.ModelInferRequest(model_name='m', raw_input_contents=[b'ab'])\n"
            "back = t.service_pb2.ModelInferRequest.FromString(r.SerializeToString())\n"
            "assert back.model_name == 'm' and back.raw_input_contents == [b'ab']\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
