"""The memory a version's warm-up needs, estimated from its ONNX graphs before anything loads.

A bundle can pass validation and still take gigabytes when its first full batch runs (a decoder
that upsamples to a huge image, a batch size far above what the host holds). The pool asks
`check_warmup_memory` first and refuses such a bundle with a message naming it, instead of
letting the warm-up take the server down. The estimate is deliberately high: every weight plus
every intermediate tensor of one `max_batch_size` batch (ONNX shape inference, the batch
dimension set), as if ONNX Runtime reused no buffer; components run one at a time, so the
largest component's activations count once. Example::

    check_warmup_memory(bundle, 2 << 30)   # FailedPrecondition if over 2 GiB
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import TensorProto

from latentserve.core.errors import FailedPrecondition
from latentserve.registry.bundle.files import Bundle

_ELEMENT_BYTES: dict[int, int] = {
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2,
    TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.INT16: 2, TensorProto.UINT16: 2,
    TensorProto.INT32: 4, TensorProto.UINT32: 4, TensorProto.INT64: 8, TensorProto.UINT64: 8,
    TensorProto.BOOL: 1,
}


def _weights_bytes(path: Path) -> int:
    """The model file and its external data files (all inside the bundle folder)."""
    total = path.stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    locations = {entry.value for tensor in model.graph.initializer
                 for entry in tensor.external_data if entry.key == "location"}
    for location in locations:
        candidate = path.parent / location
        if candidate.is_file():
            total += candidate.stat().st_size
    return total


def _activation_bytes(path: Path, batch: int) -> int:
    """Bytes of every tensor one `batch`-row run produces (shapes inferred with the batch
    dimension of each graph input set to `batch`)."""
    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or not value.type.tensor_type.shape.dim:
            continue
        first = value.type.tensor_type.shape.dim[0]
        if not first.HasField("dim_value") or first.dim_value <= 0:
            first.Clear()
            first.dim_value = batch
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    total = 0
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        if not dims or any(d <= 0 for d in dims):
            continue  # unknown at this point: not counted
        total += math.prod(dims) * _ELEMENT_BYTES.get(int(tensor.elem_type), 4)
    return total


def estimate_warmup_bytes(bundle: Bundle) -> int:
    """Estimated peak bytes of loading `bundle` and running one full batch per component."""
    paths = [p for p in (bundle.decoder_path, bundle.mapping_path, bundle.encoder_path)
             if p is not None]
    batch = bundle.spec.max_batch_size
    weights = sum(_weights_bytes(p) for p in paths)
    return weights + max(_activation_bytes(p, batch) for p in paths)


def check_warmup_memory(bundle: Bundle, budget_bytes: int) -> None:
    """FailedPrecondition naming the bundle when its warm-up would need over `budget_bytes`."""
    needed = estimate_warmup_bytes(bundle)
    if needed > budget_bytes:
        spec = bundle.spec
        raise FailedPrecondition(
            f"bundle {spec.name!r} would need about {needed / 2**20:.0f} MiB to warm up (one "
            f"batch of max_batch_size={spec.max_batch_size}), over LATENTSERVE_WARMUP_MEMORY_"
            f"BYTES={budget_bytes / 2**20:.0f} MiB; lower its max_batch_size or raise the limit")
