"""numpy ↔ `latentserve.v1.Tensor` conversion, strict about dtype, shape and byte length.

Shared by the SDK and the service, so every error names the offending field. Example::

    t = to_tensor(np.zeros((2, 4), np.float32))
    z = from_tensor(t, field="latents", dtype=np.float32, ndim=2)   # read-only view, no copy
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from latentserve.v1 import generator_pb2 as pb

_WIRE_DTYPES: dict[pb.DType.ValueType, np.dtype[Any]] = {
    pb.D_TYPE_FLOAT32: np.dtype("<f4"),
    pb.D_TYPE_UINT8: np.dtype("u1"),
}
_F32 = np.dtype("<f4")
_DTYPE_NAMES = {pb.D_TYPE_FLOAT32: "float32", pb.D_TYPE_UINT8: "uint8"}


class TensorError(ValueError):
    """A Tensor message (or an array meant for one) is malformed.

    `field` is the exact path of the bad part, e.g. `latents.data` or `images.shape`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _wire_dtype_of(arr: npt.NDArray[Any], field: str) -> pb.DType.ValueType:
    if arr.dtype == np.uint8:
        return pb.D_TYPE_UINT8
    if np.issubdtype(arr.dtype, np.floating):
        return pb.D_TYPE_FLOAT32
    raise TensorError(
        f"{field}.dtype", f"{field} must be a float or uint8 array, got dtype {arr.dtype}"
    )


def to_tensor(
    array: npt.ArrayLike, *, field: str = "tensor", out: pb.Tensor | None = None
) -> pb.Tensor:
    """Pack an array into a Tensor: uint8 stays uint8, any float becomes float32 (little-endian).

    `out` fills a Tensor that is already part of a message (e.g. `response.images`) in place,
    which saves copying the data again with CopyFrom. Example::

        to_tensor(np.ones((1, 3), np.float32)).shape   # [1, 3]
        to_tensor(images, out=response.images)
    """
    arr = np.asarray(array)
    if arr.dtype == _F32 and arr.flags.c_contiguous:  # the common case: bytes as they are
        dtype, data = pb.D_TYPE_FLOAT32, arr.tobytes()
    else:
        dtype = _wire_dtype_of(arr, field)
        data = np.ascontiguousarray(arr, dtype=_WIRE_DTYPES[dtype]).tobytes()
    if out is None:
        return pb.Tensor(dtype=dtype, shape=arr.shape, data=data)
    out.Clear()
    out.dtype = dtype
    out.shape.extend(arr.shape)
    out.data = data
    return out


def _check_shape(
    shape: Sequence[int], field: str, ndim: int | None, expect: Sequence[int | None] | None
) -> None:
    if any(d < 0 for d in shape):
        raise TensorError(
            f"{field}.shape", f"{field}.shape has a negative dimension: {list(shape)}"
        )
    if ndim is not None and len(shape) != ndim:
        raise TensorError(
            f"{field}.shape",
            f"{field}.shape must have {ndim} dimension{'s' if ndim != 1 else ''}, "
            f"got {list(shape)}",
        )
    if expect is not None:
        ok = len(shape) == len(expect) and all(
            e is None or e == d for d, e in zip(shape, expect, strict=True)
        )
        if not ok:
            want = ["*" if e is None else e for e in expect]
            raise TensorError(
                f"{field}.shape",
                f"{field}.shape must be [{', '.join(map(str, want))}], got {list(shape)}",
            )


def from_tensor(
    tensor: pb.Tensor,
    *,
    field: str = "tensor",
    dtype: npt.DTypeLike | None = None,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = False,
) -> npt.NDArray[Any]:
    """Unpack a Tensor into a read-only numpy view of its bytes (no copy), validating it.

    `dtype` (np.float32 or np.uint8), `ndim` and `shape` (None = any size in that
    dimension) constrain what is accepted; `finite=True` rejects NaN/Inf. Raises
    `TensorError` (a ValueError) naming the field, e.g. "latents.data has 12 bytes,
    shape [2, 4] float32 needs 32". Example::

        z = from_tensor(req.latents, field="latents", dtype=np.float32, shape=(None, 10))
    """
    name = _DTYPE_NAMES.get(tensor.dtype)
    if name is None:
        try:
            label = pb.DType.Name(tensor.dtype)
        except ValueError:
            label = f"unknown value {tensor.dtype}"
        raise TensorError(
            f"{field}.dtype", f"{field}.dtype must be D_TYPE_FLOAT32 or D_TYPE_UINT8, got {label}"
        )
    wire = _WIRE_DTYPES[tensor.dtype]
    if dtype is not None and np.dtype(dtype) != wire.newbyteorder("="):
        raise TensorError(f"{field}.dtype", f"{field}.dtype must be {np.dtype(dtype)}, got {name}")
    dims = [int(d) for d in tensor.shape]
    _check_shape(dims, field, ndim, shape)
    needed = math.prod(dims) * wire.itemsize
    if len(tensor.data) != needed:
        raise TensorError(
            f"{field}.data",
            f"{field}.data has {len(tensor.data)} bytes, shape {dims} {name} needs {needed}",
        )
    arr = np.frombuffer(tensor.data, dtype=wire).reshape(dims)
    if finite and name == "float32" and not np.isfinite(arr).all():
        raise TensorError(f"{field}.data", f"{field} contains NaN or Inf")
    return arr
