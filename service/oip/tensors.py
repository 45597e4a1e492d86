"""OIP tensors to and from numpy: data types, shapes, raw bytes, typed contents, JSON lists.

Every constructor checks the shape and the element count against the data it was given before
anything is allocated from it, and names the offending field (`inputs[latent].shape`, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from latentserve.core.errors import InvalidArgument

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
"""OIP data type → little-endian numpy dtype (BYTES is not used by any latentserve model)."""
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
    "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
}
"""Which InferTensorContents field holds each data type (FP16 has none: raw only)."""
MAX_DIMS = 8


@dataclass(frozen=True)
class Tensor:
    """One named OIP tensor."""

    name: str
    datatype: str
    array: npt.NDArray[Any]

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.array.shape]


def dtype_of(datatype: str, field: str) -> np.dtype[Any]:
    """The numpy dtype of an OIP data type name."""
    found = DTYPES.get(datatype)
    if found is None:
        shown = datatype[:32]
        raise InvalidArgument(f"{field} {shown!r} is not a supported OIP data type "
                              f"({', '.join(DTYPES)})", field=field)
    return found


def check_shape(shape: Any, field: str) -> list[int]:
    """A shape as a list of non-negative ints (at most MAX_DIMS of them)."""
    if not isinstance(shape, list | tuple) or len(shape) > MAX_DIMS:
        raise InvalidArgument(f"{field} must be a list of at most {MAX_DIMS} sizes", field=field)
    dims = []
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < 2 ** 31:
            raise InvalidArgument(f"{field} must hold sizes between 0 and 2^31 - 1, got "
                                  f"{str(dim)[:32]}", field=field)
        dims.append(int(dim))
    return dims


def from_raw(name: str, datatype: str, shape: Any, raw: bytes, field: str) -> Tensor:
    """A tensor from little-endian row-major bytes."""
    dtype = dtype_of(datatype, f"{field}.datatype")
    dims = check_shape(shape, f"{field}.shape")
    needed = math.prod(dims) * dtype.itemsize
    if len(raw) != needed:
        raise InvalidArgument(f"{field} has {len(raw)} bytes of data; shape {dims} {datatype} "
                              f"needs {needed}", field=f"{field}.contents")
    return Tensor(name, datatype, np.frombuffer(raw, dtype=dtype).reshape(dims))


def from_values(name: str, datatype: str, shape: Any, values: Any, field: str) -> Tensor:
    """A tensor from a list of values (typed gRPC contents, or REST JSON `data`, flat or
    nested row-major)."""
    dtype = dtype_of(datatype, f"{field}.datatype")
    dims = check_shape(shape, f"{field}.shape")
    try:
        array = np.asarray(values, dtype=dtype)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidArgument(f"{field}.data cannot be read as {datatype} ({str(exc)[:200]})",
                              field=f"{field}.data") from None
    if array.size != math.prod(dims):
        raise InvalidArgument(f"{field}.data has {array.size} elements; shape {dims} needs "
                              f"{math.prod(dims)}", field=f"{field}.data")
    return Tensor(name, datatype, array.reshape(dims))
