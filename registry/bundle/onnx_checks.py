"""ONNX checks of a bundle: parse, opsets, external data stays inside, onnx.checker, IO matches
the spec.

Used by `load_bundle`; each failure is a `BundleError` naming the file and the input/output::

    check_decoder(bundle_root, bundle_root / "decoder.onnx", spec)
    check_mapping(bundle_root, bundle_root / "mapping.onnx", spec)   # two-stage generators

Shaped latents are checked with their shape: a decoder of `latent_shape` [4, 16, 16] takes
[B, 4, 16, 16], a W+ synthesis takes ws [B, num_ws, w_dim] and its noise inputs [B, C, H, W].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from latentserve.registry.bundle.spec import SPEC_FILE, BundleError, BundleSpec

_ELEM: dict[int, str] = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}
MIN_OPSET = 7
MAX_OPSET = 21
"""Default-domain opsets a bundle may use: the range onnxruntime ≥ 1.19 (the oldest release
latentserve serves with) runs."""
KNOWN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
"""Operator domains onnxruntime implements; any other domain needs custom operators."""


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, element type (`float32`, `int64`, …) and shape, each
    dimension an int (fixed), a str (symbolic, e.g. "batch") or None (unknown)."""

    name: str
    elem: str
    shape: tuple[int | str | None, ...] | None

    @property
    def rank(self) -> int | None:
        """The number of dimensions (None when the graph declares no shape)."""
        return None if self.shape is None else len(self.shape)

    def fixed(self, axis: int) -> int | None:
        """Dimension `axis` when it is fixed, else None."""
        dim = None if self.shape is None else self.shape[axis]
        return dim if isinstance(dim, int) else None

    def describe(self) -> str:
        """E.g. `'z' float32 [batch, 8]`."""
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d)
                                                        for d in self.shape)  # fmt: skip
        return f"{self.name!r} {self.elem} [{dims}]"


def elem_name(elem_type: int) -> str:
    """float32 / int64 / … for an ONNX element type."""
    if elem_type in _ELEM:
        return _ELEM[elem_type]
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def graph_io(model: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The graph's inputs (initializers excluded) and outputs, in graph order."""

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        ttype = value.type.tensor_type
        shape: tuple[int | str | None, ...] | None = None
        if ttype.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value")
                          else (d.dim_param or None) for d in ttype.shape.dim)  # fmt: skip
        return TensorInfo(value.name, elem_name(ttype.elem_type), shape)

    inits = {t.name for t in model.graph.initializer}
    return ([info(v) for v in model.graph.input if v.name not in inits],
            [info(v) for v in model.graph.output])  # fmt: skip


def external_data_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the tensors whose data lives in a file beside the model."""
    return [t.name for t in _all_tensors(model.graph)
            if t.data_location == onnx.TensorProto.EXTERNAL]  # fmt: skip


def read_onnx(path: Path, root: Path | None = None) -> onnx.ModelProto:
    """Parse and check one ONNX file (external data only inside `root`, default its folder;
    opsets onnxruntime runs; onnx.checker), raising `BundleError` naming the file."""
    return _load_onnx(path.parent if root is None else root, path)


def _check_opsets(path: Path, model: onnx.ModelProto) -> None:
    for entry in model.opset_import:
        if entry.domain not in KNOWN_DOMAINS:
            raise BundleError(f"{path}: uses operator domain {entry.domain!r}, which needs custom "
                              f"operators; supported domains: "
                              f"{sorted(d or 'ai.onnx' for d in KNOWN_DOMAINS - {''})}")
        if entry.domain in ("", "ai.onnx") and not MIN_OPSET <= entry.version <= MAX_OPSET:
            raise BundleError(f"{path}: opset {entry.version} is not supported (onnxruntime "
                              f"serves opsets {MIN_OPSET}–{MAX_OPSET}); re-export with "
                              f"opset_version in that range")


def _load_onnx(root: Path, path: Path) -> onnx.ModelProto:
    """Parse `path`, refuse external data outside `root`, run onnx.checker."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{path}: not a valid ONNX model ({exc})") from None
    _check_opsets(path, model)
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
    got_elem = elem_name(ttype.elem_type)
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


def _check_tensor_any(path: Path, value: onnx.ValueInfoProto, shapes: list[list[int | None]],
                      what: str, sized_by: str) -> None:
    """`_check_tensor` against each accepted shape in turn; the first shape's error if none."""
    first: BundleError | None = None
    for dims in shapes:
        try:
            _check_tensor(path, value, onnx.TensorProto.FLOAT, dims, what, sized_by)
            return
        except BundleError as exc:
            first = first or exc
    assert first is not None
    raise first


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
    """Validate the decoder ONNX file `path` of the bundle in `root` against `spec`: the latent
    input [B, *editing_shape] (ws [B, L, w_dim] for W+), labels, noise inputs and the output."""
    model = _load_onnx(root, path)
    d = spec.decoder
    noise = [n.name for n in d.noise_inputs]
    inputs = [d.input] + ([d.condition_input] if d.condition_input else []) + noise
    _check_names(path, model, inputs, [d.output], "decoder")
    ins, outs = _io(model, "input"), _io(model, "output")
    _check_tensor(path, ins[d.input], onnx.TensorProto.FLOAT, [None, *spec.editing_shape],
                  "decoder input", _editing_dim_field(spec))
    if d.condition_input:
        _check_tensor(path, ins[d.condition_input], onnx.TensorProto.INT64, [None],
                      "decoder condition input")
    for entry in d.noise_inputs:
        _check_tensor(path, ins[entry.name], onnx.TensorProto.FLOAT, [None, *entry.shape],
                      "decoder noise input", "decoder.noise_inputs")
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
    shapes = [[None, *spec.editing_shape], [None, spec.row_dim]]
    if spec.num_ws:  # a W+ generator's encoder may return one w for every layer
        shapes.append([None, spec.editing_dim])
    for name in outputs:
        _check_tensor_any(path, outs[name], shapes, "encoder output", _editing_dim_field(spec))


def check_mapping(root: Path, path: Path, spec: BundleSpec) -> None:
    """Validate the mapping ONNX file `path` (z [B, latent_dim] → w [B, w_dim]) against `spec`."""
    assert spec.mapping is not None
    model = _load_onnx(root, path)
    m = spec.mapping
    _check_names(path, model, [m.input], [m.output], "mapping")
    ins, outs = _io(model, "input"), _io(model, "output")
    _check_tensor(path, ins[m.input], onnx.TensorProto.FLOAT, [None, *spec.prior_shape],
                  "mapping input", "latent_shape" if spec.latent_shape else "latent_dim")
    per_layer = m.output_per_layer and m.num_ws is not None
    _check_tensor(path, outs[m.output], onnx.TensorProto.FLOAT,
                  [None, m.num_ws, m.w_dim] if per_layer else [None, m.w_dim], "mapping output",
                  "mapping.num_ws, mapping.w_dim" if per_layer else "mapping.w_dim")


def _editing_dim_field(spec: BundleSpec) -> str:
    """The spec field that sets the editing space's size."""
    if spec.num_ws:
        return "mapping.num_ws, mapping.w_dim"
    if spec.mapping is not None:
        return "mapping.w_dim"
    return "latent_shape" if spec.latent_shape else "latent_dim"
