"""ONNX checks of a bundle: parse, external data stays inside, onnx.checker, IO matches the spec.

Used by `load_bundle`; each failure is a `BundleError` naming the file and the input/output::

    check_decoder(bundle_root, bundle_root / "decoder.onnx", spec)
    check_mapping(bundle_root, bundle_root / "mapping.onnx", spec)   # two-stage generators
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from latentserve.registry.spec import SPEC_FILE, BundleError, BundleSpec

_ELEM: dict[int, str] = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}


def _load_onnx(root: Path, path: Path) -> onnx.ModelProto:
    """Parse `path`, refuse external data outside `root`, run onnx.checker."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{path}: not a valid ONNX model ({exc})") from None
    real_root = root.resolve()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (path.parent / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(real_root):
            raise BundleError(f"{path}: tensor {tensor.name!r} keeps its data outside the bundle "
                              f"({location!r}); external data must be a file inside the bundle")
        if not target.is_file():
            raise BundleError(f"{path}: external data file {location!r} of tensor "
                              f"{tensor.name!r} is missing")
    try:
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path}: fails the ONNX checker ({first})") from None
    return model


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _io(model: onnx.ModelProto, kind: str) -> dict[str, onnx.ValueInfoProto]:
    if kind == "input":
        inits = {t.name for t in model.graph.initializer}
        return {v.name: v for v in model.graph.input if v.name not in inits}
    return {v.name: v for v in model.graph.output}


def _check_tensor(
    path: Path, value: onnx.ValueInfoProto, elem: int, dims: list[int | None], what: str,
    sized_by: str = "",
) -> None:
    """`dims[0]` is the batch dim (must be dynamic); None elsewhere accepts any size.
    `sized_by` names the spec field that sets the non-batch sizes (for the error message)."""
    says = f"the spec says {{}} ({sized_by})" if sized_by else "the spec says {}"
    ttype = value.type.tensor_type
    got_elem = _ELEM.get(ttype.elem_type, onnx.TensorProto.DataType.Name(ttype.elem_type).lower())
    if ttype.elem_type != elem:
        raise BundleError(f"{path}: {what} {value.name!r} has element type {got_elem}, "
                          f"expected {_ELEM[elem]}")
    if not ttype.HasField("shape"):
        raise BundleError(f"{path}: {what} {value.name!r} has no shape; expected rank {len(dims)}")
    shape = ttype.shape.dim
    if len(shape) != len(dims):
        raise BundleError(f"{path}: {what} {value.name!r} has rank {len(shape)}, "
                          f"expected rank {len(dims)}")
    if shape[0].HasField("dim_value"):
        raise BundleError(f"{path}: {what} {value.name!r} has a fixed batch dimension "
                          f"({shape[0].dim_value}); it must be dynamic (a symbolic name)")
    for axis, (dim, want) in enumerate(zip(shape, dims, strict=True)):
        if axis == 0 or want is None:
            continue
        if dim.HasField("dim_value") and dim.dim_value != want:
            raise BundleError(f"{path}: {what} {value.name!r} dimension {axis} is "
                              f"{dim.dim_value}, " + says.format(want))
        if what.endswith("input") and not dim.HasField("dim_value"):
            raise BundleError(f"{path}: {what} {value.name!r} dimension {axis} is not fixed; "
                              + says.format(want))


def _check_names(path: Path, model: onnx.ModelProto, inputs: list[str], outputs: list[str],
                 field: str) -> None:
    have_in, have_out = _io(model, "input"), _io(model, "output")
    if sorted(have_in) != sorted(inputs):
        raise BundleError(f"{path}: graph inputs are {sorted(have_in)}, but {field} expects "
                          f"{sorted(inputs)}")
    missing = [o for o in outputs if o not in have_out]
    if missing:
        raise BundleError(f"{path}: graph has no output {missing[0]!r} named by {field} "
                          f"(outputs: {sorted(have_out)})")


def check_decoder(root: Path, path: Path, spec: BundleSpec) -> None:
    """Validate the decoder ONNX file `path` of the bundle in `root` against `spec`."""
    model = _load_onnx(root, path)
    d = spec.decoder
    inputs = [d.input] + ([d.condition_input] if d.condition_input else [])
    _check_names(path, model, inputs, [d.output], "decoder")
    ins, outs = _io(model, "input"), _io(model, "output")
    _check_tensor(path, ins[d.input], onnx.TensorProto.FLOAT, [None, spec.editing_dim],
                  "decoder input", _editing_dim_field(spec))
    if d.condition_input:
        _check_tensor(path, ins[d.condition_input], onnx.TensorProto.INT64, [None],
                      "decoder condition input")
    _check_tensor(path, outs[d.output], onnx.TensorProto.FLOAT, [None, *spec.output.shape],
                  "decoder output")


def check_encoder(root: Path, path: Path, spec: BundleSpec) -> None:
    """Validate the encoder ONNX file `path` of the bundle in `root` against `spec`."""
    assert spec.encoder is not None
    model = _load_onnx(root, path)
    e = spec.encoder
    inputs = [e.input] + ([e.condition_input] if e.condition_input else [])
    outputs = [e.output_mean] + ([e.output_logvar] if e.output_logvar else [])
    _check_names(path, model, inputs, outputs, "encoder")
    if e.condition_input and spec.condition is None:
        raise BundleError(f"{root / SPEC_FILE}: encoder.condition_input is set but the "
                          "generator has no condition")
    ins, outs = _io(model, "input"), _io(model, "output")
    _check_tensor(path, ins[e.input], onnx.TensorProto.FLOAT, [None, *spec.output.shape],
                  "encoder input")
    if e.condition_input:
        _check_tensor(path, ins[e.condition_input], onnx.TensorProto.INT64, [None],
                      "encoder condition input")
    for name in outputs:
        _check_tensor(path, outs[name], onnx.TensorProto.FLOAT, [None, spec.editing_dim],
                      "encoder output", _editing_dim_field(spec))


def check_mapping(root: Path, path: Path, spec: BundleSpec) -> None:
    """Validate the mapping ONNX file `path` (z [B, latent_dim] → w [B, w_dim]) against `spec`."""
    assert spec.mapping is not None
    model = _load_onnx(root, path)
    m = spec.mapping
    _check_names(path, model, [m.input], [m.output], "mapping")
    ins, outs = _io(model, "input"), _io(model, "output")
    _check_tensor(path, ins[m.input], onnx.TensorProto.FLOAT, [None, spec.latent_dim],
                  "mapping input", "latent_dim")
    _check_tensor(path, outs[m.output], onnx.TensorProto.FLOAT, [None, m.w_dim],
                  "mapping output", "mapping.w_dim")


def _editing_dim_field(spec: BundleSpec) -> str:
    """The spec field that sets the editing space's size."""
    return "mapping.w_dim" if spec.mapping is not None else "latent_dim"
