"""Reading a decoder graph for direction discovery: the first weight that acts on the latent
(SeFa's A), every weight that reads it (a StyleGAN-like synthesis network's style affines, all
fed by w) and an early activation to expose as an extra output (GANSpace's PCA space).

The latent is followed from the graph input through shape-only ops (Reshape, Flatten,
Unsqueeze, …) and a Concat with other inputs (a class embedding: the latent's columns of the
weight are kept) to the first Gemm, MatMul, Conv or ConvTranspose whose weight is a constant.
Example::

    model = onnx.load("decoder.onnx")
    layer = first_latent_layer(model, "z", latent_dim=16)
    layer.matrix.shape                    # [out_features, 16]: A of z ↦ A z
    session_bytes = with_outputs(model, [early_activation(model, layer)])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from latentserve.core.arrays import F64
from latentserve.registry.bundle.spec import BundleError

SHAPE_OPS = frozenset({"Reshape", "Flatten", "Unsqueeze", "Squeeze", "Identity", "Cast"})
"""Ops the latent passes through unchanged on the way to its first layer."""
LAYER_OPS = frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose"})
ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Gelu",
                         "Softplus", "HardSigmoid", "Celu", "Mish"})  # fmt: skip
"""Nonlinearities: the first one after the latent layer gives the PCA activation."""
_ELEMENTWISE = frozenset({"Add", "Mul", "Sub", "BatchNormalization", "InstanceNormalization",
                          "LayerNormalization"}) | SHAPE_OPS  # fmt: skip
_MAX_HOPS = 8


@dataclass(frozen=True)
class LatentLayer:
    """The first linear map of the latent: `matrix` A [out, N] (z ↦ A z before bias)."""

    node: str
    """The layer's node name (or op type and index when unnamed)."""
    op: str
    weight: str
    """The initializer holding the weight."""
    output: str
    matrix: F64


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(attr.t)
    return found


def _label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _widths(model: onnx.ModelProto) -> dict[str, int]:
    """Last-axis sizes of the tensors whose shapes inference can tell."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is best effort here
        inferred = model
    out: dict[str, int] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value"):
            out[value.name] = dims[-1].dim_value
    return out


def first_latent_layer(model: onnx.ModelProto, latent_input: str, latent_dim: int,
                       weight: str | None = None) -> LatentLayer:
    """The first constant-weight layer the latent reaches (or the one using `weight`)."""
    consts = _constants(model)
    nodes = list(model.graph.node)
    if weight is not None:
        if weight not in consts:
            raise BundleError(f"weight: the decoder has no initializer named {weight!r}")
        users = [(i, n) for i, n in enumerate(nodes) if n.op_type in LAYER_OPS
                 and weight in list(n.input)[:2]]  # fmt: skip
        if not users:
            raise BundleError(f"weight: initializer {weight!r} is not the weight of a Gemm, "
                              "MatMul, Conv or ConvTranspose")
        index, node = users[0]
        return _layer(node, index, weight, consts[weight], 0, latent_dim)
    widths = _widths(model)
    offsets = {latent_input: 0}   # tensor carrying the latent → column offset of the latent
    for index, node in enumerate(nodes):
        carried = [name for name in node.input if name in offsets]
        if not carried:
            continue
        offset = offsets[carried[0]]
        if node.op_type in SHAPE_OPS and node.input[0] == carried[0]:
            offsets[node.output[0]] = offset
        elif node.op_type == "Concat":
            before = list(node.input)[: list(node.input).index(carried[0])]
            if any(name not in widths for name in before):
                raise BundleError(f"weight: cannot tell where the latent sits in Concat "
                                  f"{_label(node, index)!r}; name the weight with --weight")
            offsets[node.output[0]] = offset + sum(widths[name] for name in before)
        elif node.op_type in LAYER_OPS:
            position = list(node.input).index(carried[0])
            name = node.input[1] if position == 0 and len(node.input) > 1 else ""
            if name not in consts:
                raise BundleError(f"weight: the latent reaches {node.op_type} "
                                  f"{_label(node, index)!r} whose weight is not a constant; "
                                  "name the weight with --weight")
            return _layer(node, index, name, consts[name], offset, latent_dim)
        else:
            raise BundleError(f"weight: the latent reaches {node.op_type} {_label(node, index)!r} "
                              "before any linear layer; name the weight with --weight")
    raise BundleError(f"weight: the latent input {latent_input!r} reaches no Gemm, MatMul, Conv "
                      "or ConvTranspose")


SIZE_OPS = frozenset({"Shape", "Size"})
"""Ops that read only a tensor's shape (e.g. the batch size to expand a constant input)."""


def style_layers(model: onnx.ModelProto, latent_input: str, latent_dim: int) -> list[LatentLayer]:
    """Every constant-weight layer the latent feeds directly (through shape-only ops): the
    style affines of a StyleGAN-like synthesis network, which all read w. Ops that only read
    its shape are passed over; any other use of the latent is an error naming the node."""
    consts = _constants(model)
    carriers = {latent_input}
    found = []
    for index, node in enumerate(model.graph.node):
        carried = [name for name in node.input if name in carriers]
        if not carried:
            continue
        if node.op_type in SIZE_OPS:
            continue
        if node.op_type in SHAPE_OPS and node.input[0] == carried[0]:
            carriers.add(node.output[0])
            continue
        name = node.input[1] if len(node.input) > 1 else ""
        if node.op_type in LAYER_OPS and node.input[0] == carried[0] and name in consts:
            found.append(_layer(node, index, name, consts[name], 0, latent_dim))
            continue
        raise BundleError(f"weight: the latent reaches {node.op_type} {_label(node, index)!r}, "
                          "not a layer with a constant weight; name the weight with --weight")
    if not found:
        raise BundleError(f"weight: the latent input {latent_input!r} reaches no Gemm, MatMul, "
                          "Conv or ConvTranspose")
    return found


def _layer(node: onnx.NodeProto, index: int, name: str, w: np.ndarray, offset: int,
           n: int) -> LatentLayer:
    w = np.asarray(w, np.float64)
    op = node.op_type
    cols = slice(offset, offset + n)
    if op == "Gemm":
        if _attr(node, "transA", 0):
            raise BundleError(f"weight: Gemm {_label(node, index)!r} transposes its input; "
                              "not a latent layer SeFa can read")
        matrix = w[:, cols] if _attr(node, "transB", 0) else w[cols, :].T
    elif op == "MatMul":
        matrix = w[cols, :].T if w.ndim == 2 else np.empty((0, 0))
    elif op == "ConvTranspose":   # weight [in, out / group, kh, kw]: input channels first
        matrix = w[cols].reshape(w[cols].shape[0], -1).T
    else:                          # Conv weight [out, in, kh, kw]
        sub = w[:, cols]
        matrix = np.moveaxis(sub, 1, 0).reshape(sub.shape[1], -1).T
    if matrix.ndim != 2 or matrix.shape[1] != n:
        raise BundleError(f"weight: {op} {_label(node, index)!r} weight {name!r} of shape "
                          f"{list(w.shape)} does not act on {n} latent values")
    if not np.all(np.isfinite(matrix)):
        raise BundleError(f"weight: {name!r} has non-finite values")
    return LatentLayer(_label(node, index), op, name, node.output[0], matrix)


def early_activation(model: onnx.ModelProto, layer: LatentLayer) -> str:
    """The output of the first nonlinearity after `layer` (through bias adds, norms and
    reshapes); the layer's own output when none follows within a few nodes."""
    current = layer.output
    for _ in range(_MAX_HOPS):
        users = [n for n in model.graph.node if current in n.input]
        if len(users) != 1:
            break
        node = users[0]
        if node.op_type in ACTIVATIONS:
            return str(node.output[0])
        if node.op_type not in _ELEMENTWISE:
            break
        current = node.output[0]
    return layer.output


def with_outputs(model: onnx.ModelProto, names: Iterable[str]) -> bytes:
    """The model serialized with `names` added as graph outputs (for onnxruntime; in memory)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for name in names:
        if name not in have:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy.SerializeToString()
