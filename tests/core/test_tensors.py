"""numpy ↔ Tensor conversion: round trips, zero copy, and field-specific errors."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentserve.core.tensors import TensorError, from_tensor, to_tensor
from latentserve.v1 import generator_pb2 as pb

DTYPES: list[Any] = [np.dtype("<f4"), np.dtype(">f4"), np.dtype("u1")]


@given(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    )
)
def test_round_trip_is_exact(arr: np.ndarray) -> None:
    back = from_tensor(to_tensor(arr), field="x")
    assert back.shape == arr.shape
    assert back.dtype.kind == arr.dtype.kind and back.dtype.itemsize == arr.dtype.itemsize
    np.testing.assert_array_equal(back, arr)


def test_wire_format_is_little_endian_row_major() -> None:
    arr = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=">f4")  # big-endian input
    t = to_tensor(arr)
    assert t.dtype == pb.D_TYPE_FLOAT32 and list(t.shape) == [2, 2]
    assert t.data == np.array([1, 2, 3, 4], dtype="<f4").tobytes()
    assert to_tensor(np.asfortranarray(arr)).data == t.data


def test_floats_become_float32_and_uint8_stays() -> None:
    assert to_tensor(np.zeros(3, np.float64)).dtype == pb.D_TYPE_FLOAT32
    assert to_tensor(np.zeros(3, np.float16)).data == np.zeros(3, "<f4").tobytes()
    assert to_tensor(np.zeros(3, np.uint8)).dtype == pb.D_TYPE_UINT8
    assert to_tensor([[0.5, 1.5]]).shape == [1, 2]


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, np.int8])
def test_to_tensor_rejects_other_dtypes_naming_the_field(dtype: type) -> None:
    with pytest.raises(TensorError, match=r"^latents must be a float or uint8 array") as err:
        to_tensor(np.zeros(2, dtype), field="latents")
    assert err.value.field == "latents.dtype"


def test_from_tensor_is_a_read_only_view_without_copy() -> None:
    t = to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    arr = from_tensor(t, field="latents", dtype=np.float32, ndim=2)
    assert not arr.flags.writeable
    assert not arr.flags.owndata  # a view of the message's bytes


def test_wrong_byte_count_names_field_shape_and_sizes() -> None:
    t = pb.Tensor(dtype=pb.D_TYPE_FLOAT32, shape=[2, 4], data=b"\0" * 12)
    with pytest.raises(TensorError) as err:
        from_tensor(t, field="latents")
    assert str(err.value) == "latents.data has 12 bytes, shape [2, 4] float32 needs 32"
    assert err.value.field == "latents.data"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("tensor", "kwargs", "field", "message"),
    [
        (
            pb.Tensor(shape=[1], data=b"\0" * 4),
            {},
            "images.dtype",
            "images.dtype must be D_TYPE_FLOAT32 or D_TYPE_UINT8, got D_TYPE_UNSPECIFIED",
        ),
        (
            pb.Tensor(dtype=cast(Any, 7), shape=[1], data=b"\0"),
            {},
            "images.dtype",
            "images.dtype must be D_TYPE_FLOAT32 or D_TYPE_UINT8, got unknown value 7",
        ),
        (
            pb.Tensor(dtype=pb.D_TYPE_UINT8, shape=[1], data=b"\0"),
            {"dtype": np.float32},
            "images.dtype",
            "images.dtype must be float32, got uint8",
        ),
        (
            pb.Tensor(dtype=pb.D_TYPE_UINT8, shape=[2, -1], data=b""),
            {},
            "images.shape",
            "images.shape has a negative dimension: [2, -1]",
        ),
        (
            pb.Tensor(dtype=pb.D_TYPE_UINT8, shape=[4], data=b"\0" * 4),
            {"ndim": 4},
            "images.shape",
            "images.shape must have 4 dimensions, got [4]",
        ),
        (
            pb.Tensor(dtype=pb.D_TYPE_UINT8, shape=[2, 3], data=b"\0" * 6),
            {"shape": (None, 4)},
            "images.shape",
            "images.shape must be [*, 4], got [2, 3]",
        ),
        (
            pb.Tensor(dtype=pb.D_TYPE_UINT8, shape=[2, 3], data=b"\0" * 6),
            {"shape": (None, 3, 1)},
            "images.shape",
            "images.shape must be [*, 3, 1], got [2, 3]",
        ),
    ],
)
def test_from_tensor_errors(
    tensor: pb.Tensor, kwargs: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(TensorError) as err:
        from_tensor(tensor, field="images", **kwargs)  # type: ignore[arg-type]
    assert (err.value.field, str(err.value)) == (field, message)


def test_shape_wildcards_and_empty_tensors() -> None:
    empty = from_tensor(to_tensor(np.zeros((0, 4), np.float32)), shape=(None, 4))
    assert empty.shape == (0, 4)
    scalar = from_tensor(pb.Tensor(dtype=pb.D_TYPE_FLOAT32, data=b"\0" * 4))
    assert scalar.shape == ()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finite_check_is_opt_in(bad: float) -> None:
    t = to_tensor(np.array([[0.0, bad]], np.float32))
    assert from_tensor(t, field="latents").shape == (1, 2)
    with pytest.raises(TensorError, match="latents contains NaN or Inf") as err:
        from_tensor(t, field="latents", finite=True)
    assert err.value.field == "latents.data"


def test_huge_declared_shape_fails_on_length_not_memory() -> None:
    t = pb.Tensor(dtype=pb.D_TYPE_FLOAT32, shape=[2**40, 2**20], data=b"\0" * 8)
    with pytest.raises(TensorError, match=r"latents.data has 8 bytes, shape \[1099511627776"):
        from_tensor(t, field="latents")


def test_to_tensor_fills_a_message_field_in_place() -> None:
    response = pb.GenerateResponse(images=to_tensor(np.ones((5, 2), np.uint8)))
    images = np.arange(6, dtype=np.float64).reshape(2, 3)
    filled = to_tensor(images, out=response.images)
    assert filled is response.images
    assert response.images.dtype == pb.D_TYPE_FLOAT32 and list(response.images.shape) == [2, 3]
    back = from_tensor(response.images, field="images", dtype=np.float32, ndim=2)
    np.testing.assert_array_equal(back, images.astype(np.float32))
