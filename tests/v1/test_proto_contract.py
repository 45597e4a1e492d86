"""generator.proto keeps the agreed contract: names, numbers, enums, RPCs, and a comment on
every element (checked on the source, via protoc's source info)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"

FIELDS: dict[str, dict[str, int]] = {
    "ModelRef": {"name": 1, "version": 2, "alias": 3},
    "ResolvedModel": {"name": 1, "version": 2, "alias": 3},
    "Tensor": {"dtype": 1, "shape": 2, "data": 3},
    "SampleRequest": {
        "model": 1,
        "n": 2,
        "seed": 3,
        "truncation_psi": 4,
        "class_labels": 5,
        "output": 6,
        "truncation_cutoff": 7,
        "noise": 8,
    },
    "NoiseOptions": {"mode": 1, "seed": 2},
    "LayerRange": {"start": 1, "end": 2},
    "NoiseInputInfo": {"name": 1, "shape": 2},
    "LatentSource": {"latents": 1, "seeds": 2},
    "SeedList": {"seeds": 1, "truncation_psi": 2, "truncation_cutoff": 3},
    "InterpolateRequest": {
        "model": 1,
        "keyframes": 2,
        "steps": 3,
        "method": 4,
        "class_labels": 5,
        "output": 6,
        "noise": 7,
    },
    "EditRequest": {
        "model": 1,
        "base": 2,
        "direction_name": 3,
        "direction_vector": 4,
        "strengths": 5,
        "conditional_on": 6,
        "class_labels": 7,
        "output": 8,
        "layers": 9,
        "noise": 10,
    },
    "EncodeRequest": {"model": 1, "images": 2, "png": 3, "class_labels": 4},
    "PngList": {"images": 1},
    "EncodeResponse": {"model": 1, "latents": 2, "latent_space": 3},
    "DecodeRequest": {"model": 1, "latents": 2, "class_labels": 3, "output": 4, "noise": 5},
    "ProjectRequest": {"model": 1, "images": 2, "png": 3, "class_labels": 4, "steps": 5,
                       "population": 6, "timeout_s": 7, "progress_every": 8,
                       "include_reconstruction": 9, "output": 10, "seed": 11, "init": 12},
    "ProjectResponse": {"model": 1, "step": 2, "steps": 3, "decodes": 4, "loss": 5, "done": 6,
                        "latents": 7, "latent_space": 8, "images": 9, "png": 10,
                        "output_range": 11, "class_labels": 12, "psnr": 13, "ssim": 14,
                        "stop": 15, "initial_loss": 16},
    "StyleMixRequest": {"model": 1, "row_seeds": 2, "col_seeds": 3, "layers": 4,
                        "truncation_psi": 5, "truncation_cutoff": 6, "class_labels": 7,
                        "output": 8, "noise": 9, "include_sources": 10},
    "GenerateResponse": {"model": 1, "latents": 2, "images": 3, "png": 4, "offset": 5,
                         "latent_space": 6, "output_range": 7},
    "ValueRange": {"min": 1, "max": 2},
    "ListModelsRequest": {},
    "ListModelsResponse": {"models": 1},
    "ModelSummary": {"name": 1, "versions": 2, "aliases": 3, "loaded_version": 4},
    "GetModelRequest": {"model": 1},
    "DirectionInfo": {"name": 1, "method": 2, "unit": 3, "factor": 4, "sigma": 5, "quality": 6,
                      "layers": 7},
    "DirectionQuality": {"measure": 1, "spearman_within": 2, "spearman_pooled": 3,
                         "leak_measure": 4, "leak_plain": 5, "leak_conditional": 6,
                         "reliable": 7, "layers": 8},
    "ModelInfo": {
        "model": 1,
        "latent_dim": 2,
        "prior": 3,
        "output_shape": 4,
        "output_min": 5,
        "output_max": 6,
        "has_encoder": 7,
        "num_classes": 8,
        "class_names": 9,
        "directions": 10,
        "max_batch_size": 11,
        "metrics": 12,
        "aliases": 13,
        "description": 14,
        "editing_space": 15,
        "has_mapping": 16,
        "w_dim": 17,
        "encoder_conditional": 18,
        "latent_shape": 19,
        "num_ws": 20,
        "prior_mean": 21,
        "prior_scale": 22,
        "noise_inputs": 23,
        "noise_default": 24,
    },
}
ENUMS = {
    "DType": ["D_TYPE_UNSPECIFIED", "D_TYPE_FLOAT32", "D_TYPE_UINT8"],
    "LatentSpace": ["LATENT_SPACE_UNSPECIFIED", "LATENT_SPACE_Z", "LATENT_SPACE_W",
                    "LATENT_SPACE_W_PLUS"],
    "NoiseMode": ["NOISE_MODE_UNSPECIFIED", "NOISE_MODE_CONST", "NOISE_MODE_SEEDED",
                  "NOISE_MODE_NONE"],
    "OutputFormat": [
        "OUTPUT_FORMAT_UNSPECIFIED",
        "OUTPUT_FORMAT_FLOAT32",
        "OUTPUT_FORMAT_UINT8",
        "OUTPUT_FORMAT_PNG",
        "OUTPUT_FORMAT_LATENTS_ONLY",
    ],
    "ProjectInit": ["PROJECT_INIT_UNSPECIFIED", "PROJECT_INIT_ENCODER", "PROJECT_INIT_PRIOR"],
    "ProjectStop": ["PROJECT_STOP_UNSPECIFIED", "PROJECT_STOP_STEPS", "PROJECT_STOP_TIMEOUT",
                    "PROJECT_STOP_CONVERGED"],
    "InterpolationMethod": [
        "INTERPOLATION_METHOD_UNSPECIFIED",
        "INTERPOLATION_METHOD_LERP",
        "INTERPOLATION_METHOD_SLERP",
        "INTERPOLATION_METHOD_VP_LERP",
    ],
}
RPCS = {
    "ListModels": ("ListModelsRequest", "ListModelsResponse", False),
    "GetModel": ("GetModelRequest", "ModelInfo", False),
    "Sample": ("SampleRequest", "GenerateResponse", False),
    "Interpolate": ("InterpolateRequest", "GenerateResponse", False),
    "StreamInterpolate": ("InterpolateRequest", "GenerateResponse", True),
    "Edit": ("EditRequest", "GenerateResponse", False),
    "Encode": ("EncodeRequest", "EncodeResponse", False),
    "Decode": ("DecodeRequest", "GenerateResponse", False),
    "StyleMix": ("StyleMixRequest", "GenerateResponse", False),
    "Project": ("ProjectRequest", "ProjectResponse", True),
}
ONEOFS = {
    "ModelRef": {"selector": ["version", "alias"]},
    "LatentSource": {"source": ["latents", "seeds"]},
    "EditRequest": {"direction": ["direction_name", "direction_vector"]},
    "EncodeRequest": {"input": ["images", "png"]},
    "ProjectRequest": {"input": ["images", "png"]},
}


def test_messages_keep_their_field_names_and_numbers() -> None:
    found = {
        name: {f.name: f.number for f in desc.fields}
        for name, desc in pb.DESCRIPTOR.message_types_by_name.items()
    }
    assert found == FIELDS


def test_oneofs_and_optional_fields() -> None:
    for message, groups in ONEOFS.items():
        desc = pb.DESCRIPTOR.message_types_by_name[message]
        real = {
            o.name: [f.name for f in o.fields]
            for o in desc.oneofs
            if not o.name.startswith("_")  # proto3 `optional` fields make synthetic oneofs
        }
        assert real == groups, message
    for message in ("SampleRequest", "SeedList", "StyleMixRequest"):
        for name in ("truncation_psi", "truncation_cutoff"):
            field = pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[name]
            assert field.has_presence, f"{message}.{name} must be optional"


def test_enums_start_with_unspecified_zero() -> None:
    found = {
        name: [v.name for v in sorted(e.values, key=lambda v: v.number)]
        for name, e in pb.DESCRIPTOR.enum_types_by_name.items()
    }
    assert found == ENUMS
    for enum in pb.DESCRIPTOR.enum_types_by_name.values():
        assert [v.number for v in enum.values] == list(range(len(enum.values)))
        assert enum.values[0].name.endswith("_UNSPECIFIED")


def test_service_rpcs() -> None:
    service = pb.DESCRIPTOR.services_by_name["GeneratorService"]
    found = {
        m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods
    }
    assert found == RPCS
    assert not any(m.client_streaming for m in service.methods)
    assert pb.DESCRIPTOR.package == "latentserve.v1"
    assert hasattr(pb_grpc, "GeneratorServiceStub")
    assert hasattr(pb_grpc, "add_GeneratorServiceServicer_to_server")


@pytest.fixture(scope="module")
def source_file(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path_factory.mktemp("descriptor") / "set.pb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            "latentserve/v1/generator.proto",
        ],
        cwd=PROTO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return files.file[0]


def _elements(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Path (as in SourceCodeInfo) → readable name of every element that needs a comment."""
    found: dict[tuple[int, ...], str] = {}
    for i, msg in enumerate(file.message_type):
        found[(4, i)] = msg.name
        for j, field in enumerate(msg.field):
            found[(4, i, 2, j)] = f"{msg.name}.{field.name}"
        for j, oneof in enumerate(msg.oneof_decl):
            members = [f for f in msg.field if f.HasField("oneof_index") and f.oneof_index == j]
            if not all(f.proto3_optional for f in members):  # skip synthetic `optional` oneofs
                found[(4, i, 8, j)] = f"{msg.name}.{oneof.name} (oneof)"
    for i, enum in enumerate(file.enum_type):
        found[(5, i)] = enum.name
        for j, value in enumerate(enum.value):
            found[(5, i, 2, j)] = f"{enum.name}.{value.name}"
    for i, service in enumerate(file.service):
        found[(6, i)] = service.name
        for j, method in enumerate(service.method):
            found[(6, i, 2, j)] = f"{service.name}.{method.name}"
    return found


def test_every_element_is_commented(source_file: descriptor_pb2.FileDescriptorProto) -> None:
    commented = {
        tuple(loc.path)
        for loc in source_file.source_code_info.location
        if loc.leading_comments.strip() or loc.trailing_comments.strip()
    }
    elements = _elements(source_file)
    assert len(elements) > 100
    missing = [name for path, name in elements.items() if path not in commented]
    assert not missing, f"add a comment to: {', '.join(missing)}"
