"""Attack regressions, request side (issue 15 items 4, 5, 7, 11): hostile or careless requests
get INVALID_ARGUMENT / NOT_FOUND with bounded work, never INTERNAL, UNKNOWN or a stalled loop.

Every hostile input is built in-test in bounded memory (the PNG bomb is a few hundred KB).
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from typing import Any

import grpc
import numpy as np
import pytest
import structlog

from latentserve.core.errors import InvalidArgument
from latentserve.core.tensors import to_tensor
from latentserve.service import images as images_module
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.attack import ATTACK_MAX_FRAMES, ATTACK_MAX_ITEMS, packed_zeros, raw_call
from tests.fixtures.service import field_violations, metric_value

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, *, colour: int = 0, rows_per_block: int = 500) -> bytes:
    """A valid grey (or RGBA: colour 6) PNG of zeros, width × height, in bounded memory.

    The zero rows are deflated once per block and the block repeated: a full flush between
    blocks makes each compressed block independent of the ones before it.
    """
    channels = 4 if colour == 6 else 1
    row = bytes(1 + width * channels)
    block = row * rows_per_block
    deflate = zlib.compressobj(9)
    head = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(height, rows_per_block)
    tail = deflate.compress(row * rest) + deflate.flush()
    idat = head + body * (blocks - 1) + tail
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def _assert_invalid(error: grpc.RpcError, field: str, text: str = "") -> None:
    assert error.code() == INVALID, (error.code(), error.details())
    assert field in [f for f, _ in field_violations(error)], error.details()
    assert text in (error.details() or ""), error.details()


# ------------------------------------------------------------------ item 4: PNG before limits
def test_png_bomb_is_refused_from_its_header(attack_stub: pb_grpc.GeneratorServiceStub) -> None:
    bomb = png_bomb(20_000, 20_000)  # 400 megapixels in ~400 KB: Pillow's bomb error before
    assert len(bomb) < 2 << 20
    with pytest.raises(grpc.RpcError) as info:
        attack_stub.Encode(pb.EncodeRequest(png=pb.PngList(images=[bomb])), timeout=60)
    _assert_invalid(info.value, "png.images[0]", "20000×20000")


def test_png_size_and_format_are_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an image was decoded before its header was checked")

    monkeypatch.setattr(images_module.Image, "open", no_decoding)
    rgba = png_bomb(13_000, 13_000, colour=6, rows_per_block=100)
    gif = b"GIF89a" + bytes(64)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
    for blob, text in [(rgba, "13000×13000"), (gif, "not a PNG"), (eps, "not a PNG"),
                       (b"\x89PNG\r\n\x1a\n" + b"\0\0", "truncated")]:
        with pytest.raises(InvalidArgument) as info:
            images_module.from_png([blob], (1, 8, 8), (0.0, 1.0), field="png.images")
        assert text in info.value.message
        assert info.value.violations[0].field == "png.images[0]"


def test_right_sized_png_still_decodes() -> None:
    blob = images_module.to_png(np.full((1, 1, 8, 8), 0.5, np.float32), (0.0, 1.0))[0]
    out = images_module.from_png([blob], (1, 8, 8), (0.0, 1.0), field="png.images")
    assert out.shape == (1, 1, 8, 8) and abs(float(out.mean()) - 0.5) < 0.01


# ------------------------------------------------------------------ item 5: huge repeated fields
def test_huge_class_labels_refused_before_per_element_work(attack_server: BackgroundServer) -> None:
    # 4·10⁷ labels (40 MB on the wire) used to stall every RPC for ~20 s.
    head = pb.SampleRequest(n=1, model=pb.ModelRef(name="tiny-cond")).SerializeToString()
    error = raw_call(attack_server.address, "Sample", head + packed_zeros(5, 40_000_000),
                     timeout=120)
    _assert_invalid(error, "class_labels", "over the limit")


def test_many_conditional_on_names_are_refused(attack_stub: pb_grpc.GeneratorServiceStub) -> None:
    # Valid but repeated names were accepted (2·10⁶ of them after 18 s and 2 GiB).
    request = pb.EditRequest(base=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                             direction_name="d0", strengths=[1.0],
                             conditional_on=["pc0"] * (ATTACK_MAX_ITEMS + 1))
    with pytest.raises(grpc.RpcError) as info:
        attack_stub.Edit(request, timeout=30)
    _assert_invalid(info.value, "conditional_on", "over the limit")


@pytest.mark.parametrize(("rpc", "request_", "field"), [
    ("Interpolate", pb.InterpolateRequest(
        keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=range(ATTACK_MAX_FRAMES * 4))),
        steps=2), "keyframes.seeds.seeds"),
    ("Edit", pb.EditRequest(base=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                            direction_name="d0", strengths=[0.5] * (ATTACK_MAX_ITEMS * 4)),
     "strengths"),
    ("Edit", pb.EditRequest(base=pb.LatentSource(seeds=pb.SeedList(
        seeds=range(ATTACK_MAX_ITEMS * 4))), direction_name="d0", strengths=[1.0]),
     "base.seeds.seeds"),
    ("Decode", pb.DecodeRequest(latents=to_tensor(np.zeros((1, 4), np.float32)),
                                class_labels=[0] * (ATTACK_MAX_ITEMS * 4)), "class_labels"),
    ("Encode", pb.EncodeRequest(png=pb.PngList(images=[b""] * (ATTACK_MAX_ITEMS * 4))),
     "png.images"),
    ("Decode", pb.DecodeRequest(latents=pb.Tensor(dtype=pb.D_TYPE_FLOAT32, shape=[1] * 5000)),
     "latents.shape"),
], ids=["seeds", "strengths", "base seeds", "labels", "pngs", "tensor rank"])
def test_repeated_fields_are_bounded_first(attack_stub: pb_grpc.GeneratorServiceStub, rpc: str,
                                          request_: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(attack_stub, rpc)(request_, timeout=30)
    _assert_invalid(info.value, field, "at most" if field.endswith("shape") else "over the limit")


# ------------------------------------------------------------------ item 7: never INTERNAL
def seeds_source(*values: int, psi: float | None = None) -> pb.LatentSource:
    extra = {} if psi is None else {"truncation_psi": psi}
    return pb.LatentSource(seeds=pb.SeedList(seeds=list(values), **extra))


HUGE = 3.4e38


@pytest.mark.parametrize(("rpc", "request_", "field"), [
    ("Sample", pb.SampleRequest(n=2, truncation_psi=HUGE), "truncation_psi"),
    ("Interpolate", pb.InterpolateRequest(keyframes=seeds_source(1, 2, psi=HUGE), steps=3),
     "keyframes.seeds.truncation_psi"),
    ("Edit", pb.EditRequest(base=seeds_source(1, psi=HUGE), direction_name="d0",
                            strengths=[1.0]), "base.seeds.truncation_psi"),
    ("Edit", pb.EditRequest(base=pb.LatentSource(latents=to_tensor(np.full((1, 4), HUGE,
                                                                           np.float32))),
                            direction_name="pc0", strengths=[HUGE]), "strengths"),
], ids=["sample psi", "interpolate psi", "edit psi", "edit strength"])
def test_overflowing_values_are_invalid_argument(attack_stub: pb_grpc.GeneratorServiceStub,
                                                 rpc: str, request_: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(attack_stub, rpc)(request_, timeout=30)
    _assert_invalid(info.value, field, "non-finite")


def test_huge_direction_vector_is_a_direction(attack_stub: pb_grpc.GeneratorServiceStub) -> None:
    # 3e38 overflowed the float32 norm and ended INTERNAL; only the direction matters.
    vector = np.array([HUGE, 0, 0, 0], np.float32)
    zero = pb.LatentSource(latents=to_tensor(np.zeros((1, 4), np.float32)))
    out = attack_stub.Edit(pb.EditRequest(base=zero, direction_vector=to_tensor(vector),
                                          strengths=[2.0], output=pb.OUTPUT_FORMAT_LATENTS_ONLY),
                           timeout=30)
    assert np.frombuffer(out.latents.data, np.float32).tolist() == [2.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_ok_responses_are_finite(attack_stub: pb_grpc.GeneratorServiceStub, value: float) -> None:
    latents = np.array([[value, -value, value, value]], np.float32)
    try:
        out = attack_stub.Decode(pb.DecodeRequest(latents=to_tensor(latents)), timeout=30)
    except grpc.RpcError as error:
        _assert_invalid(error, "latents", "not finite")
    else:
        assert np.isfinite(np.frombuffer(out.images.data, np.float32)).all()


@pytest.mark.parametrize("method", ["ListModels", "GetModel", "Sample", "Interpolate", "Edit",
                                    "Encode", "Decode"])
def test_undecodable_bytes_are_invalid_argument(attack_server: BackgroundServer,
                                                method: str) -> None:
    before = metric_value(attack_server, "latentserve_requests_total", rpc=method,
                          code="INVALID_ARGUMENT")
    error = raw_call(attack_server.address, method, b"\x0a\xff\xff\xff\xff\x0f")
    _assert_invalid(error, "request", "not a valid")
    after = metric_value(attack_server, "latentserve_requests_total", rpc=method,
                         code="INVALID_ARGUMENT")
    assert after == before + 1


def test_undecodable_stream_request(attack_server: BackgroundServer) -> None:
    with grpc.insecure_channel(attack_server.address) as channel:
        call = channel.unary_stream("/latentserve.v1.GeneratorService/StreamInterpolate",
                                    request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            list(call(b"\x12\x05abc", timeout=30))
    _assert_invalid(info.value, "request")


def test_internal_error_logs_its_traceback(attack_server: BackgroundServer,
                                           attack_stub: pb_grpc.GeneratorServiceStub,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert attack_server.server is not None
    logged = io.StringIO()
    previous = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=logged))

    async def broken() -> None:
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(attack_server.server.manager, "list_models", broken)
    try:
        with pytest.raises(grpc.RpcError) as info:
            attack_stub.ListModels(pb.ListModelsRequest(), timeout=30)
    finally:
        structlog.configure(logger_factory=previous)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "registry exploded" not in (info.value.details() or "")
    err = logged.getvalue()
    assert "internal error" in err and "registry exploded" in err and "Traceback" in err


# ------------------------------------------------------------------ item 11: long names
@pytest.mark.parametrize(("rpc", "request_", "code"), [
    ("Sample", pb.SampleRequest(n=1, model=pb.ModelRef(name="m" * 20_000)),
     grpc.StatusCode.NOT_FOUND),
    ("Sample", pb.SampleRequest(n=1, model=pb.ModelRef(name="tiny", alias="ä" * 20_000)),
     grpc.StatusCode.NOT_FOUND),
    ("Edit", pb.EditRequest(base=seeds_source(1), direction_name="d" * 20_000, strengths=[1]),
     grpc.StatusCode.NOT_FOUND),
    ("Edit", pb.EditRequest(base=seeds_source(1), direction_name="d0", strengths=[1],
                            conditional_on=["猫" * 20_000]), grpc.StatusCode.NOT_FOUND),
], ids=["model name", "alias", "direction", "held direction"])
def test_long_names_keep_their_status(attack_stub: pb_grpc.GeneratorServiceStub, rpc: str,
                                      request_: Any, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(attack_stub, rpc)(request_, timeout=30)
    assert info.value.code() == code, info.value.details()
    assert len((info.value.details() or "").encode()) <= 600


def test_psi_nan_is_still_refused(attack_stub: pb_grpc.GeneratorServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        attack_stub.Sample(pb.SampleRequest(n=1, truncation_psi=math.inf), timeout=30)
    _assert_invalid(info.value, "truncation_psi")
