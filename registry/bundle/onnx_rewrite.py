"""Small, exact rewrites of a foreign ONNX graph that let the builder take it as its authors
exported it, instead of asking them to re-export:

- `flatten_latent_input`: a latent input with trailing unit axes (the DCGAN tutorial's
  z [B, 100, 1, 1]) becomes [B, 100]; a Reshape in front of the old consumers restores the
  original shape, so the network computes exactly what it did;
- `pin_axis`: an IO axis the exporter left symbolic (an encoder's `view(x.size(0), -1)`) is
  given the size the builder already knows.

Example::

    model = onnx.load("dcgan.onnx")
    if unit_trailing_axes(model, "z"):
        model = flatten_latent_input(model, "z")          # z: [batch, 100]
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from latentserve.registry.bundle.spec import BundleError

_SUFFIX = "__unflattened"


def _value(model: onnx.ModelProto, name: str, *, output: bool = False) -> onnx.ValueInfoProto:
    values = model.graph.output if output else model.graph.input
    found = next((v for v in values if v.name == name), None)
    if found is None:
        raise BundleError(f"the graph has no {'output' if output else 'input'} {name!r}")
    return found


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim]


def unit_trailing_axes(model: onnx.ModelProto, name: str) -> bool:
    """Whether input `name` is [B, N, 1, …, 1] (rank ≥ 3, N fixed, every later axis 1)."""
    dims = _dims(_value(model, name))
    return len(dims) >= 3 and dims[1] is not None and all(d == 1 for d in dims[2:])


def flatten_latent_input(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy of `model` whose input `name` [B, N, 1, …, 1] is [B, N]; a Reshape restores the
    original shape in front of every node that read it."""
    dims = _dims(_value(model, name))
    if not unit_trailing_axes(model, name):
        raise BundleError(f"input {name!r} {dims} is not [B, N, 1, …, 1]")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inner = name + _SUFFIX
    for node in out.graph.node:
        for i, used in enumerate(node.input):
            if used == name:
                node.input[i] = inner
    for graph_output in out.graph.output:
        if graph_output.name == name:
            raise BundleError(f"input {name!r} is also a graph output; cannot flatten it")
    shape = name + "__shape"
    out.graph.initializer.append(numpy_helper.from_array(
        np.asarray([0, *dims[1:]], np.int64), shape))     # 0: keep the batch size
    out.graph.node.insert(0, helper.make_node("Reshape", [name, shape], [inner],
                                              name=f"{name}_to_{len(dims)}d"))
    value = _value(out, name)
    batch = value.type.tensor_type.shape.dim[0]
    del value.type.tensor_type.shape.dim[:]
    value.type.tensor_type.shape.dim.add().CopyFrom(batch)
    value.type.tensor_type.shape.dim.add().dim_value = math.prod(d or 1 for d in dims[1:])
    onnx.checker.check_model(out)
    return out


def pin_axis(model: onnx.ModelProto, name: str, axis: int, size: int, *,
             output: bool = True) -> onnx.ModelProto:
    """A copy of `model` whose output (or input) `name` has `size` on `axis`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    dim = _value(out, name, output=output).type.tensor_type.shape.dim[axis]
    dim.Clear()
    dim.dim_value = size
    return out
