"""Triton model-repository export: config contents, a real server loading it, the CLI command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

from latentserve.registry.bundle.files import Bundle
from latentserve.registry.cli.registry import app
from latentserve.registry.triton.export import (
    export_triton,
    triton_load_files,
    triton_model_config,
)
from latentserve.service.backends.triton import shared_client
from latentserve.service.devtools.triton_local import TritonProcess
from tests.fixtures.tiny import build_tiny_bundle


def parse_pbtxt(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def test_onnxruntime_flavour_config(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="cfg", num_classes=3, max_batch_size=8)
    names = export_triton(bundle, 4, tmp_path / "repo", flavor="onnxruntime",
                          max_queue_delay_us=250, preferred_batch_sizes=[4, 8])  # fmt: skip
    assert names == ["cfg__v4", "cfg__v4__encoder"]
    decoder = parse_pbtxt(tmp_path / "repo" / "cfg__v4" / "config.pbtxt")
    assert (decoder.name, decoder.backend, decoder.max_batch_size) == ("cfg__v4", "onnxruntime", 8)
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in decoder.input] == [
        ("z", "TYPE_FP32", [4]),
        ("label", "TYPE_INT64", [1]),
    ]
    assert decoder.input[1].HasField("reshape") and list(decoder.input[1].reshape.shape) == []
    assert [(o.name, list(o.dims)) for o in decoder.output] == [("x", [1, 8, 8])]
    assert list(decoder.dynamic_batching.preferred_batch_size) == [4, 8]
    assert decoder.dynamic_batching.max_queue_delay_microseconds == 250
    assert decoder.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert decoder.default_model_filename == "model.onnx"
    model = tmp_path / "repo" / "cfg__v4" / "1" / "model.onnx"
    assert model.read_bytes() == bundle.decoder_path.read_bytes()
    assert not (model.parent / "model.py").exists()

    encoder = parse_pbtxt(tmp_path / "repo" / "cfg__v4__encoder" / "config.pbtxt")
    assert [o.name for o in encoder.output] == ["mu", "logvar"]
    assert [list(i.dims) for i in encoder.input] == [[1, 8, 8], [1]]
    as_json = triton_model_config(bundle, "encoder", "onnxruntime", name="cfg__v4__encoder",
                                  max_queue_delay_us=250, preferred_batch_sizes=[4, 8])  # fmt: skip
    assert json_format.Parse(as_json, mc.ModelConfig()) == encoder


def test_python_flavour_files_and_defaults(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="py", with_encoder=False)
    assert export_triton(bundle, 1, tmp_path / "repo", flavor="python") == ["py__v1"]
    config = parse_pbtxt(tmp_path / "repo" / "py__v1" / "config.pbtxt")
    assert config.backend == "python"
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert list(config.dynamic_batching.preferred_batch_size) == [bundle.spec.max_batch_size]
    files = triton_load_files(bundle, "decoder", "python")
    assert sorted(files) == ["file:1/model.onnx", "file:1/model.py"]
    assert (tmp_path / "repo" / "py__v1" / "1" / "model.py").read_bytes() == files[
        "file:1/model.py"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preferred_batch_sizes": [32]}, "preferred_batch_sizes"),
        ({"flavor": "tensorrt"}, "flavor"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
    ],
)
def test_bad_export_arguments_are_named(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", with_encoder=False)
    arguments: dict[str, object] = {"flavor": "python", **kwargs}
    with pytest.raises(ValueError, match=message):
        export_triton(bundle, 1, tmp_path / "repo", **arguments)  # type: ignore[arg-type]


@pytest.mark.triton
@pytest.mark.asyncio(loop_scope="session")
async def test_exported_python_flavour_loads_in_a_real_server(
    tmp_path: Path, triton_server: TritonProcess
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="texport", with_encoder=False)
    [name] = export_triton(bundle, 7, triton_server.model_repository, flavor="python")
    client = shared_client(triton_server.grpc_url)
    await client.load_model(name)  # from the repository folder, no overrides
    assert await client.is_model_ready(name)
    config = (await client.get_model_config(name)).config
    assert config.max_batch_size == bundle.spec.max_batch_size
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    from tritonclient.grpc import InferInput

    request = InferInput("z", [3, 4], "FP32")
    request.set_data_from_numpy(z)
    images = (await client.infer(name, [request])).as_numpy("x")
    session = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(images, session.run(None, {"z": z})[0])
    await client.unload_model(name)


def test_export_triton_command(
    tmp_path: Path,
    registry_uri: str,
    registry_bundles: dict[str, Bundle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LATENTSERVE_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "repo"
    args = ["export-triton", "tiny", "--alias", "production", "--flavor", "python",
            "--out", str(out)]
    result = runner.invoke(app, [*args, "--registry-uri", registry_uri])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["tiny__v1", "tiny__v1__encoder"]
    exported = (out / "tiny__v1" / "1" / "model.onnx").read_bytes()
    assert exported == registry_bundles["tiny"].decoder_path.read_bytes()

    both = runner.invoke(app, [*args, "--version", "1", "--registry-uri", registry_uri])
    assert both.exit_code == 2 and "exactly one of --version and --alias" in both.output
    missing = runner.invoke(
        app, ["export-triton", "nope", "--version", "1", "--out", str(out),
              "--registry-uri", registry_uri]
    )
    assert missing.exit_code == 1 and "nope" in missing.output
