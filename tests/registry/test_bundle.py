"""Bundle I/O: write → load roundtrip, the tiny generators, and every refusal of load_bundle."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from latentserve.registry.bundle.files import (
    Bundle,
    bundles_in,
    content_hash,
    load_bundle,
    write_bundle,
)
from latentserve.registry.bundle.spec import DIRECTIONS_FILE, SIGMA_SUFFIX, SPEC_FILE, BundleError
from latentserve.registry.settings import default_zoo_dir
from tests.fixtures.registry import edit_spec
from tests.fixtures.tiny import DIRECTION_SIGMAS, TinyWeights, build_tiny_bundle


def _edit_directions(root: Path, change: Callable[[dict[str, Any]], object]) -> None:
    with np.load(root / DIRECTIONS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(root / DIRECTIONS_FILE, **arrays)


def _edit_onnx(path: Path, change: Callable[[onnx.ModelProto], object]) -> None:
    model = onnx.load(str(path))
    change(model)
    onnx.save(model, str(path))


def _externalise(model: onnx.ModelProto, location: str, root: Path) -> None:
    """Move initializer w_t's bytes to `location` (relative to the model file's folder)."""
    tensor = next(t for t in model.graph.initializer if t.name == "w_t")
    data = tensor.raw_data or np.asarray(onnx.numpy_helper.to_array(tensor)).tobytes()
    target = root / location
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


# ------------------------------------------------------------------ roundtrip and tiny


def test_write_load_roundtrip(tiny_bundle: Bundle, tmp_path: Path) -> None:
    loaded = load_bundle(tiny_bundle.root)
    assert loaded.spec == tiny_bundle.spec
    assert loaded.content_hash == tiny_bundle.content_hash == content_hash(tiny_bundle.root)
    assert list(loaded.directions) == ["d0", "pc0", "sefa0"]
    for name, direction in loaded.directions.items():
        assert direction.vector.dtype == np.float32
        assert abs(float(np.linalg.norm(direction.vector)) - 1.0) < 1e-5
        assert direction.sigma == DIRECTION_SIGMAS[name]
        assert direction.spec.name == name
    assert loaded.truncation_center.tolist() == [0.0] * 4
    assert loaded.decoder_path.is_file() and loaded.encoder_path is not None

    copy = write_bundle(
        tmp_path / "copy",
        loaded.spec,
        decoder=loaded.decoder_path,
        encoder=loaded.encoder_path,
        directions={n: (d.vector, d.sigma) for n, d in loaded.directions.items()},
        preview_png=(loaded.root / "preview.png").read_bytes(),
    )
    assert copy.root == tmp_path / "copy"
    assert copy.content_hash == loaded.content_hash


def test_write_bundle_replaces_previous_bundle_and_refuses_foreign_dirs(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    no_encoder = tiny_bundle.spec.model_copy(update={"encoder": None, "directions": []})
    decoder = tiny_bundle.decoder_path.read_bytes()
    again = write_bundle(tiny_bundle.root, no_encoder, decoder=decoder)
    assert not (again.root / "encoder.onnx").exists()
    assert not (again.root / DIRECTIONS_FILE).exists()
    assert again.encoder_path is None and again.directions == {}

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a bundle"):
        write_bundle(foreign, no_encoder, decoder=again.decoder_path)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_write_bundle_leaves_nothing_behind_when_invalid(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="directions"):
        write_bundle(tmp_path / "bad", tiny_bundle.spec, decoder=tiny_bundle.decoder_path,
                     encoder=tiny_bundle.encoder_path)
    assert list(tmp_path.glob("*bad*")) == []


def test_tiny_is_deterministic_and_invertible(tmp_path: Path) -> None:
    a = build_tiny_bundle(tmp_path / "a", seed=3)
    b = build_tiny_bundle(tmp_path / "b", seed=3)
    c = build_tiny_bundle(tmp_path / "c", seed=4)
    assert a.content_hash == b.content_hash != c.content_hash

    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    x = ort.InferenceSession(str(a.decoder_path)).run(None, {"z": z})[0]
    assert x.shape == (5, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x, TinyWeights(4, (1, 8, 8), 0, 3).decode(z), atol=1e-6)
    assert a.encoder_path is not None
    mu, logvar = ort.InferenceSession(str(a.encoder_path)).run(None, {"x": x})
    np.testing.assert_allclose(mu, z, atol=1e-3)
    assert logvar.shape == (5, 4)


def test_tiny_conditional_uses_the_label(tiny_conditional_bundle: Bundle) -> None:
    bundle = tiny_conditional_bundle
    assert bundle.spec.num_classes == 3
    assert bundle.spec.decoder.condition_input == "label"
    z = np.zeros((3, 4), np.float32)
    labels = np.arange(3, dtype=np.int64)
    x = ort.InferenceSession(str(bundle.decoder_path)).run(None, {"z": z, "label": labels})[0]
    assert not np.allclose(x[0], x[1])
    assert bundle.encoder_path is not None
    mu = ort.InferenceSession(str(bundle.encoder_path)).run(
        ["mu"], {"x": x, "label": labels})[0]
    np.testing.assert_allclose(mu, z, atol=1e-3)


def test_tiny_options(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t", name="wide", latent_dim=6, shape=(3, 4, 5),
                               with_encoder=False, max_batch_size=5, metrics={"fid": 1.5})
    assert bundle.encoder_path is None and bundle.spec.encoder is None
    assert bundle.spec.output.shape == [3, 4, 5] and bundle.spec.max_batch_size == 5
    assert bundle.spec.metrics == {"fid": 1.5}
    x = ort.InferenceSession(str(bundle.decoder_path)).run(
        None, {"z": np.ones((2, 6), np.float32)})[0]
    assert x.shape == (2, 3, 4, 5)


def test_shipped_bundles_load() -> None:
    for root in bundles_in(default_zoo_dir()):
        bundle = load_bundle(root)
        assert bundle.spec.name == root.name


def test_external_data_inside_the_bundle_is_accepted(tiny_bundle: Bundle) -> None:
    root = tiny_bundle.root
    _edit_onnx(tiny_bundle.decoder_path, lambda m: _externalise(m, "weights/w_t.bin", root))
    bundle = load_bundle(root)
    assert bundle.content_hash != tiny_bundle.content_hash
    z = np.zeros((1, 4), np.float32)
    assert ort.InferenceSession(str(bundle.decoder_path)).run(None, {"z": z})[0].shape[0] == 1


# ------------------------------------------------------------------ refusals


def _set_dim(model: onnx.ModelProto, axis: int, value: int, which: str = "input") -> None:
    dims = getattr(model.graph, which)[0].type.tensor_type.shape.dim
    dims[axis].Clear()
    dims[axis].dim_value = value


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _pyfunc_dir(root: Path) -> None:
    shutil.rmtree(root)
    root.mkdir()
    (root / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    (root / "python_model.pkl").write_bytes(b"\x80\x04K\x01.")


def _outside_symlink(root: Path) -> None:
    outside = root.parent / "outside.onnx"
    shutil.copyfile(root / "decoder.onnx", outside)
    (root / "decoder.onnx").unlink()
    (root / "decoder.onnx").symlink_to(outside)


def _externalise_then_delete(root: Path) -> None:
    _edit_onnx(root / "decoder.onnx", lambda m: _externalise(m, "w.bin", root))
    (root / "w.bin").unlink()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _double_input(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE


REFUSALS: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing spec": (lambda r: (r / SPEC_FILE).unlink(), "latentserve.json: spec file is missing"),
    "spec not json": (lambda r: (r / SPEC_FILE).write_text("{nope"), "not valid JSON"),
    "unknown schema": (lambda r: edit_spec(r, lambda s: s.update(schema_version=99)),
                       "schema_version 99 is not supported"),
    "missing decoder": (lambda r: (r / "decoder.onnx").unlink(),
                        "decoder.onnx: file named by decoder.file is missing"),
    "missing encoder": (lambda r: (r / "encoder.onnx").unlink(),
                        "encoder.onnx: file named by encoder.file is missing"),
    "missing directions": (lambda r: (r / DIRECTIONS_FILE).unlink(),
                           "directions.npz: directions file is missing"),
    "corrupt onnx": (lambda r: (r / "decoder.onnx").write_bytes(b"\x00garbage\xff" * 10),
                     "decoder.onnx: "),
    "truncated onnx": (lambda r: _truncate(r / "encoder.onnx"), "encoder.onnx: "),
    "checker failure": (
        lambda r: _edit_onnx(r / "decoder.onnx",
                             lambda m: setattr(m.graph.node[0], "op_type", "NoSuchOp")),
        "decoder.onnx: fails the ONNX checker"),
    "input name": (lambda r: edit_spec(r, lambda s: s["decoder"].update(input="latent")),
                   "graph inputs are ['z'], but decoder expects ['latent']"),
    "output name": (lambda r: edit_spec(r, lambda s: s["encoder"].update(output_mean="mean")),
                    "encoder.onnx: graph has no output 'mean'"),
    "latent dim": (lambda r: edit_spec(r, lambda s: s.update(latent_dim=5)),
                   "decoder input 'z' dimension 1 is 4, the spec says 5"),
    "output shape": (lambda r: edit_spec(r, lambda s: s["output"].update(shape=[1, 16, 16])),
                     "decoder output 'x' dimension 2 is 8, the spec says 16"),
    "channels": (lambda r: edit_spec(r, lambda s: s["output"].update(shape=[3, 8, 8])),
                 "dimension 1 is 1, the spec says 3"),
    "fixed batch": (lambda r: _edit_onnx(r / "decoder.onnx", lambda m: _set_dim(m, 0, 8)),
                    "fixed batch dimension (8); it must be dynamic"),
    "rank": (lambda r: _edit_onnx(r / "encoder.onnx",
                                  lambda m: m.graph.input[0].type.tensor_type.shape.dim.pop()),
             "encoder input 'x' has rank 3, expected rank 4"),
    "element type": (lambda r: _edit_onnx(r / "decoder.onnx", _double_input),
                     "element type double, expected float32"),
    "nan direction": (lambda r: _edit_directions(r, lambda a: a["d0"].__setitem__(0, np.nan)),
                      "direction 'd0' has non-finite values"),
    "non-unit direction": (lambda r: _edit_directions(r, lambda a: a.update(pc0=a["pc0"] * 1.01)),
                           "direction 'pc0' is not unit-norm"),
    "wrong length": (lambda r: _edit_directions(r, lambda a: a.update(d0=np.ones(5) / 5**0.5)),
                     "must be a float vector of length 4"),
    "zero sigma": (lambda r: _edit_directions(
        r, lambda a: a.update({"d0" + SIGMA_SUFFIX: np.float32(0.0)})), "sigma must be finite"),
    "nan sigma": (lambda r: _edit_directions(
        r, lambda a: a.update({"sefa0" + SIGMA_SUFFIX: np.float32(np.nan)})),
        "sigma must be finite and > 0, got nan"),
    "extra key": (lambda r: _edit_directions(r, lambda a: a.update(extra=a["d0"])),
                  "unexpected: ['extra']"),
    "missing key": (lambda r: _edit_directions(r, lambda a: a.pop("sefa0")),
                    "missing: ['sefa0']"),
    "dotdot path": (lambda r: edit_spec(r, lambda s: s["decoder"].update(file="../decoder.onnx")),
                    "decoder.file '../decoder.onnx' must be a relative path inside the bundle"),
    "absolute path": (lambda r: edit_spec(
        r, lambda s: s["encoder"].update(file=str((r / "encoder.onnx").resolve()))),
        "encoder.file '/"),
    "symlink outside": (_outside_symlink, "links outside the bundle directory"),
    "external data outside": (
        lambda r: _edit_onnx(r / "decoder.onnx", lambda m: _externalise(m, "../w_t.bin", r)),
        "keeps its data outside the bundle ('../w_t.bin')"),
    "external data missing": (
        _externalise_then_delete,
        "external data file 'w.bin' of tensor 'w_t' is missing"),
    "pyfunc model": (_pyfunc_dir, "this is an MLflow pyfunc/pickle model"),
    "pickle in bundle": (lambda r: (r / "model.pkl").write_bytes(b"\x80\x04."),
                         "model.pkl: pickle files are not allowed"),
    "pickle in subdir": (lambda r: _write(r / "extra" / "x.pickle", b"\x80\x04."),
                         "extra/x.pickle: pickle files are not allowed"),
    "bad preview": (lambda r: (r / "preview.png").write_bytes(b"GIF89a"), "preview.png: not a PNG"),
    "bad metric name": (lambda r: edit_spec(r, lambda s: s.update(metrics={"fid@10k": 1.0})),
                        "metrics.fid@10k"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_load_bundle_refuses(case: str, tiny_bundle: Bundle) -> None:
    mutate, message = REFUSALS[case]
    mutate(tiny_bundle.root)
    with pytest.raises(BundleError) as caught:
        load_bundle(tiny_bundle.root)
    assert message in str(caught.value)
    assert str(tiny_bundle.root) in str(caught.value)


def test_load_bundle_refuses_a_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle directory does not exist"):
        load_bundle(tmp_path / "nowhere")
