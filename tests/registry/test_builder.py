"""The public bundle builder from ONNX files and `latentserve bundle create/check`: real ONNX
graphs built with onnx.helper, every validation error naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from latentserve.registry.bundle.builder import BundleOptions, OnnxComponent, build_bundle
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.bundle.spec import PREVIEW_FILE, SPEC_FILE, BundleError
from tests.fixtures.cli import run_cli
from tests.fixtures.tiny import TinyWeights, build_tiny_bundle


def decoder_onnx(path: Path, *, latent_dim: int = 4, shape: tuple[int, ...] = (1, 8, 8),
                 batch: str | int = "batch", latent: str = "z", opset: int = 17,
                 activation: str = "Sigmoid", seed: int = 0) -> Path:
    """x = act(z W + b) reshaped to [B, *shape]: a small real decoder graph."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    w = (rng.standard_normal((latent_dim, size)) / np.sqrt(latent_dim)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.zeros(size, np.float32), "b"),
             numpy_helper.from_array(np.array([-1, *shape], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", [latent, "w"], ["h"]),
             helper.make_node("Add", ["h", "b"], ["pre"]),
             helper.make_node(activation, ["pre"], ["flat"]),
             helper.make_node("Reshape", ["flat", "shape"], ["x"])]
    graph = helper.make_graph(
        nodes, "dec", [helper.make_tensor_value_info(latent, TensorProto.FLOAT,
                                                     [batch, latent_dim])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *shape])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.save_model(model, str(path))
    return path


def opts(**kw: object) -> BundleOptions:
    base: dict[str, object] = {"name": "mine", "output_range": (0.0, 1.0)}
    return BundleOptions(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("src")
    plain = build_tiny_bundle(root / "tiny").root
    cond = build_tiny_bundle(root / "cond", name="tiny-cond", num_classes=3).root
    return {"decoder": plain / "decoder.onnx", "encoder": plain / "encoder.onnx",
            "cond_decoder": cond / "decoder.onnx", "cond_encoder": cond / "encoder.onnx"}


def test_builds_a_bundle_from_onnx_files_reading_io_from_the_graphs(
        tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    bundle = build_bundle(tmp_path / "b", opts(max_batch_size=8),
                          {"decoder": tiny_files["decoder"], "encoder": tiny_files["encoder"]})
    spec = bundle.spec
    assert (spec.latent_dim, spec.output.shape, spec.output.range) == (4, [1, 8, 8], (0.0, 1.0))
    assert (spec.decoder.input, spec.decoder.output) == ("z", "x")
    assert spec.encoder is not None
    assert (spec.encoder.output_mean, spec.encoder.output_logvar) == ("mu", "logvar")
    assert (tmp_path / "b" / PREVIEW_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_bundle(tmp_path / "b").content_hash == bundle.content_hash


def test_conditional_decoder_gets_its_labels(tmp_path: Path,
                                             tiny_files: dict[str, Path]) -> None:
    bundle = build_bundle(tmp_path / "c", opts(labels=["a", "b", "c"]),
                          {"decoder": tiny_files["cond_decoder"],
                           "encoder": tiny_files["cond_encoder"]})
    assert bundle.spec.condition is not None and bundle.spec.condition.labels == ["a", "b", "c"]
    assert bundle.spec.decoder.condition_input == "label"
    with pytest.raises(BundleError, match=r"^labels: decoder takes the class input 'label'"):
        build_bundle(tmp_path / "d", opts(), {"decoder": tiny_files["cond_decoder"]})


def test_bytes_sources_and_a_tanh_range(tmp_path: Path) -> None:
    path = decoder_onnx(tmp_path / "t.onnx", activation="Tanh", shape=(3, 4, 4))
    bundle = build_bundle(tmp_path / "b", opts(output_range=(-1.0, 1.0)),
                          {"decoder": path.read_bytes()})
    assert bundle.spec.output.shape == [3, 4, 4]


@pytest.mark.parametrize(("make", "options", "names", "field"), [
    (lambda p: decoder_onnx(p, latent_dim=4), {"latent_dim": 5}, {}, "latent_dim"),
    (lambda p: decoder_onnx(p), {}, {"latent": "noise"}, "decoder"),
    (lambda p: decoder_onnx(p, batch=1), {}, {}, "decoder"),
    (lambda p: decoder_onnx(p), {"output_shape": (1, 4, 4)}, {}, "output_shape"),
    (lambda p: decoder_onnx(p, shape=(8, 8, 1)), {}, {}, "output_shape"),
    (lambda p: decoder_onnx(p), {"output_range": (0.5, 1.0)}, {}, "output_range"),
    (lambda p: decoder_onnx(p), {"output_range": (1.0, 0.0)}, {}, "output_range"),
    (lambda p: decoder_onnx(p), {"labels": ["a", "b"]}, {}, "decoder"),
    (lambda p: decoder_onnx(p), {"name": "Bad Name"}, {}, "bundle options: name"),
])
def test_every_validation_error_names_its_field(tmp_path: Path, make, options, names,  # type: ignore[no-untyped-def]
                                                field: str) -> None:
    path = make(tmp_path / "dec.onnx")
    with pytest.raises(BundleError) as caught:
        build_bundle(tmp_path / "out", opts(**options), {"decoder": OnnxComponent(path, names)})
    assert caught.value.message.startswith(f"{field}:"), caught.value.message
    assert not (tmp_path / "out").exists()


def test_static_batch_axis_message_says_how_to_fix_it(tmp_path: Path) -> None:
    path = decoder_onnx(tmp_path / "d.onnx", batch=1)
    with pytest.raises(BundleError, match=r"fixed batch dimension.*dynamic_axes"):
        build_bundle(tmp_path / "o", opts(), {"decoder": path})


def test_external_data_and_unsupported_opset_are_refused(tmp_path: Path) -> None:
    model = onnx.load(str(decoder_onnx(tmp_path / "d.onnx")))
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save_model(model, str(ext / "d.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="d.data", size_threshold=0)
    with pytest.raises(BundleError, match=r"^decoder: .*external data"):
        build_bundle(tmp_path / "o", opts(), {"decoder": ext / "d.onnx"})
    old = decoder_onnx(tmp_path / "old.onnx", opset=5)
    with pytest.raises(BundleError, match="opset 5 is not supported"):
        build_bundle(tmp_path / "o", opts(), {"decoder": old})


def test_unknown_component_and_ambiguous_encoder_outputs(tmp_path: Path,
                                                         tiny_files: dict[str, Path]) -> None:
    with pytest.raises(BundleError, match=r"^components: unknown component 'styles'"):
        build_bundle(tmp_path / "o", opts(), {"decoder": tiny_files["decoder"],
                                              "styles": tiny_files["decoder"]})
    with pytest.raises(BundleError, match=r"^encoder: --encoder-mean 'nope' names no output"):
        build_bundle(tmp_path / "o", opts(), {
            "decoder": tiny_files["decoder"],
            "encoder": OnnxComponent(tiny_files["encoder"], {"mean": "nope"})})


def test_cli_create_then_check(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    out = tmp_path / "my-vae"
    code, text = run_cli("bundle", "create", "--decoder", str(tiny_files["decoder"]), "--encoder",
                      str(tiny_files["encoder"]), "--latent-dim", "4", "--output-range", "0,1",
                      "--out", str(out))
    assert code == 0, text
    assert json.loads((out / SPEC_FILE).read_text())["name"] == "my-vae"
    code, text = run_cli("bundle", "check", str(out))
    assert code == 0, text
    assert "decoder: [8, 1, 8, 8] float32" in text and text.rstrip().endswith("ok")


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    code, text = run_cli("bundle", "create", "--decoder", str(tiny_files["decoder"]),
                      "--latent-dim", "7", "--output-range", "0,1", "--out", str(tmp_path / "x"))
    assert code == 2
    assert [line for line in text.splitlines() if line.startswith("error:")] == [
        text.strip()] and "latent_dim" in text
    code, text = run_cli("bundle", "check", str(tmp_path / "absent"))
    assert code == 2 and text.startswith("error:") and "does not exist" in text


def test_check_reports_outputs_outside_the_spec_range(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t")
    raw = json.loads((bundle.root / SPEC_FILE).read_text())
    raw["output"]["range"] = [0.0, 0.5]
    (bundle.root / SPEC_FILE).write_text(json.dumps(raw))
    code, text = run_cli("bundle", "check", str(bundle.root))
    assert code == 2
    assert "error: decoder: outputs" in text and "leave output.range [0, 0.5]" in text


def test_tiny_weights_decode_matches_the_built_bundle(tmp_path: Path,
                                                      tiny_files: dict[str, Path]) -> None:
    from latentserve.registry.quality.onnx_generator import OnnxGenerator

    bundle = build_bundle(tmp_path / "b", opts(), {"decoder": tiny_files["decoder"]})
    gen = OnnxGenerator(bundle)
    z = gen.sample_latents(3, 5)
    expected = TinyWeights(4, (1, 8, 8), 0, 0).decode(z)
    np.testing.assert_allclose(gen.decode(z), expected, atol=1e-6)
