"""Reading a decoder graph for direction discovery: the first weight that acts on the latent
(SeFa's A), every weight that reads it (a StyleGAN-like synthesis network's style affines, all
fed by w, or each by its own ws[:, l] of a W+ input) and an early activation to expose as an
extra output (GANSpace's PCA space).

The latent is followed from the graph input through shape-only ops (Reshape, Flatten,
Unsqueeze, Expand, …), past ops that read only its shape (Shape, Size: `z.reshape(z.shape[0],
…)`), and through a Concat with other inputs (a class embedding: the latent's columns of the
weight are kept) to the first Gemm, MatMul, Conv or ConvTranspose whose weight is a constant.
A latent that reaches a convolution as a spatial map ([C, H, W] with H·W > 1, a VAE's latent)
has no weight SeFa can factorise: `LatentLayer.spatial` says so. Activations are recognised
as ops (Relu, LeakyRelu, Tanh, …) and as the patterns exporters write them in: SiLU as
x·Sigmoid(x), GELU as 0.5·x·(1 + Erf(x/√2)). Example::

    model = onnx.load("decoder.onnx")
    layer = first_latent_layer(model, "z", latent_dim=16)
    layer.matrix.shape                    # [out_features, 16]: A of z ↦ A z
    session_bytes = with_outputs(model, [early_activation(model, layer)], only=True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from latentserve.core.arrays import F64
from latentserve.registry.bundle.spec import BundleError

SHAPE_OPS = frozenset({"Reshape", "Flatten", "Unsqueeze", "Squeeze", "Identity", "Cast",
                       "Expand"})  # fmt: skip
"""Ops the latent passes through unchanged (as their first input) on the way to its first
layer."""
SIZE_OPS = frozenset({"Shape", "Size"})
"""Ops that read only a tensor's shape (e.g. the batch size to reshape or expand with)."""
LAYER_OPS = frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose"})
ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Gelu",
                         "Softplus", "HardSigmoid", "Celu", "Mish", "Erf", "HardSwish",
                         "ThresholdedRelu"})  # fmt: skip
"""Nonlinearities: the first one after the latent layer (alone, or inside an exporter's
pattern such as SiLU = x·Sigmoid(x)) gives the PCA activation."""
_ELEMENTWISE = frozenset({"Add", "Mul", "Sub", "Div", "BatchNormalization",
                          "InstanceNormalization", "LayerNormalization", "Pow", "Sqrt",
                          "Where"}) | SHAPE_OPS  # fmt: skip
_MAX_HOPS = 24


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
    spatial: tuple[int, ...] = ()
    """The latent's [C, H, W] where it reaches a convolution as a spatial map (H·W > 1); A is
    then not read (empty)."""
    ws_index: int | None = None
    """W+: the layer l of ws[:, l] this weight reads (None: it reads the whole latent)."""


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


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Shapes of the tensors shape inference (with data propagation) can tell."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # shape inference is best effort here
        inferred = model
    out: dict[str, list[int | None]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if value.type.tensor_type.HasField("shape"):
            out[value.name] = [d.dim_value if d.HasField("dim_value") else None
                               for d in value.type.tensor_type.shape.dim]
    return out


def _passes(node: onnx.NodeProto, carried: str) -> bool:
    """Whether `node` hands the latent on unchanged (a shape-only op reading it first)."""
    return node.op_type in SHAPE_OPS and node.input[0] == carried


def _spatial(shape: list[int | None] | None) -> tuple[int, ...]:
    """[C, H, W] of a carrier [B, C, H, W] whose H·W > 1 (unknown sizes count as spatial)."""
    if shape is None or len(shape) < 4:
        return ()
    rest = shape[2:]
    if all(d == 1 for d in rest):
        return ()
    return tuple(-1 if d is None else d for d in shape[1:])


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
    shapes = _shapes(model)
    offsets = {latent_input: 0}   # tensor carrying the latent → column offset of the latent
    for index, node in enumerate(nodes):
        carried = [name for name in node.input if name in offsets]
        if not carried or node.op_type in SIZE_OPS:
            continue
        offset = offsets[carried[0]]
        if _passes(node, carried[0]):
            offsets[node.output[0]] = offset
        elif node.op_type == "Concat":
            before = list(node.input)[: list(node.input).index(carried[0])]
            widths = [(shapes.get(name) or [None])[-1] for name in before]
            if any(w is None for w in widths):
                raise BundleError(f"weight: cannot tell where the latent sits in Concat "
                                  f"{_label(node, index)!r}; name the weight with --weight")
            offsets[node.output[0]] = offset + sum(w or 0 for w in widths)
        elif node.op_type in LAYER_OPS:
            position = list(node.input).index(carried[0])
            name = node.input[1] if position == 0 and len(node.input) > 1 else ""
            spatial = _spatial(shapes.get(carried[0])) if node.op_type.startswith("Conv") else ()
            if spatial:
                return LatentLayer(_label(node, index), node.op_type, name, node.output[0],
                                   np.empty((0, latent_dim)), spatial)
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


def _layer_pick(node: onnx.NodeProto, consts: dict[str, np.ndarray],
                shapes: dict[str, list[int | None]], carried: str) -> int | None:
    """The W+ layer a Gather(axis=1, constant scalar index) of ws [B, L, w_dim] picks."""
    if node.op_type != "Gather" or node.input[0] != carried or _attr(node, "axis", 0) != 1:
        return None
    index = consts.get(node.input[1])
    if index is None or np.ndim(index) != 0:
        return None
    layers = (shapes.get(carried) or [None, None])[1]
    value = int(index)
    return value + layers if value < 0 and layers is not None else value


def style_layers(model: onnx.ModelProto, latent_input: str, latent_dim: int) -> list[LatentLayer]:
    """Every constant-weight layer the latent feeds directly (through shape-only ops): the
    style affines of a StyleGAN-like synthesis network, which all read w — or, with a W+
    input ws [B, L, w_dim], each its own ws[:, l] (a Gather on axis 1; `ws_index` is l).
    Ops that only read its shape are passed over; any other use of the latent is an error
    naming the node."""
    consts = _constants(model)
    shapes = _shapes(model)
    carriers: dict[str, int | None] = {latent_input: None}   # tensor → W+ layer it holds
    found = []
    for index, node in enumerate(model.graph.node):
        carried = [name for name in node.input if name in carriers]
        if not carried or node.op_type in SIZE_OPS:
            continue
        if _passes(node, carried[0]):
            carriers[node.output[0]] = carriers[carried[0]]
            continue
        picked = _layer_pick(node, consts, shapes, carried[0])
        if picked is not None:
            carriers[node.output[0]] = picked
            continue
        name = node.input[1] if len(node.input) > 1 else ""
        if node.op_type in LAYER_OPS and node.input[0] == carried[0] and name in consts:
            layer = _layer(node, index, name, consts[name], 0, latent_dim)
            found.append(LatentLayer(layer.node, layer.op, layer.weight, layer.output,
                                     layer.matrix, ws_index=carriers[carried[0]]))
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
    reshapes, past ops that read only shapes); the layer's own output when none follows
    within a few nodes. An exporter's pattern counts as one activation: SiLU written as
    x·Sigmoid(x) ends at the Mul, GELU written with Erf at its last Mul."""
    nodes = list(model.graph.node)
    users: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in _value_inputs(node):
            users.setdefault(name, []).append(i)
    start = next((i for i, n in enumerate(nodes) if layer.output in n.output), -1)
    reach = {layer.output}
    hops = 0
    for i in range(start + 1, len(nodes)):
        node = nodes[i]
        if not reach & set(_value_inputs(node)):
            continue
        hops += 1
        if node.op_type in ACTIVATIONS:
            return _pattern_end(nodes, users, i)
        if hops > _MAX_HOPS or node.op_type not in _ELEMENTWISE:
            break
        reach.update(node.output)
    return layer.output


def _value_inputs(node: onnx.NodeProto) -> list[str]:
    """The inputs whose values (not only shapes) a node reads."""
    if node.op_type in SIZE_OPS:
        return []
    return list(node.input)[:1] if node.op_type in SHAPE_OPS else list(node.input)


def _pattern_end(nodes: list[onnx.NodeProto], users: dict[str, list[int]], i: int) -> str:
    """The output of the activation that node `i` starts: x·Sigmoid(x) (SiLU) ends at its
    Mul; x·(1 + Erf(x/√2))·0.5 (GELU) at its last Mul; any other op at itself."""
    node = nodes[i]
    out = str(node.output[0])
    if node.op_type == "Sigmoid":
        x = node.input[0]
        for j in users.get(out, []):
            if nodes[j].op_type == "Mul" and set(nodes[j].input) == {x, out}:
                return str(nodes[j].output[0])
        return out
    if node.op_type != "Erf":
        return out
    scaled = next((n for n in nodes if node.input[0] in n.output), None)
    source = (scaled.input[0] if scaled is not None and scaled.op_type in ("Div", "Mul")
              else None)
    current = out
    for _ in range(4):
        following = [nodes[j] for j in users.get(current, [])]
        if len(following) != 1 or following[0].op_type not in ("Add", "Mul"):
            break
        step = following[0]
        current = str(step.output[0])
        if step.op_type == "Mul" and source in step.input:
            after = [nodes[j] for j in users.get(current, [])]
            if len(after) == 1 and after[0].op_type == "Mul":   # the trailing 0.5
                return str(after[0].output[0])
            return current
    return out


def with_outputs(model: onnx.ModelProto, names: Iterable[str], *, only: bool = False) -> bytes:
    """The model serialized with `names` added as graph outputs (for onnxruntime; in memory).

    `only`: they become the only outputs, so onnxruntime drops the nodes after them (PCA of an
    early activation then runs the first layers, not the whole decoder)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    wanted = list(names)
    if only:
        del copy.graph.output[:]
    have = {o.name for o in copy.graph.output}
    for name in wanted:
        if name not in have:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    if only:
        _prune(copy, set(wanted))
    return copy.SerializeToString()


def _prune(model: onnx.ModelProto, outputs: set[str]) -> None:
    """Drop the nodes no requested output depends on (in place)."""
    needed = set(outputs)
    keep = []
    for node in reversed(model.graph.node):
        if needed & set(node.output):
            keep.append(node)
            needed |= set(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(keep))
    used = [t for t in model.graph.initializer if t.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(used)
