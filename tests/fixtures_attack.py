"""Fixtures for the attack (regression) tests: an embedded-only server with small limits,
raw byte-level calls, and helpers that build hostile inputs in bounded memory.

- `attack_server`: a session server (embedded backend) over `registry_uri`, limits
  max_items=64 and max_frames=128, so oversized requests stay small to build.
- `attack_stub`: a raw GeneratorService stub on it.
- `raw_call(address, method, data)`: send request bytes as they are (no protobuf encoding).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from fixtures_service import service_settings
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2_grpc as pb_grpc

ATTACK_MAX_ITEMS = 64
ATTACK_MAX_FRAMES = 128
SERVICE = "latentserve.v1.GeneratorService"


@pytest.fixture(scope="session")
def attack_server(registry_uri: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """An embedded-backend server with small request limits (see module docstring)."""
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("attack-cache"),
                                max_items=ATTACK_MAX_ITEMS, max_frames=ATTACK_MAX_FRAMES)
    with BackgroundServer(settings) as bg:
        yield bg


@pytest.fixture(scope="session")
def attack_stub(attack_server: BackgroundServer) -> Iterator[pb_grpc.GeneratorServiceStub]:
    """A raw stub (64 MiB messages) on `attack_server`."""
    with _channel(attack_server.address) as channel:
        yield pb_grpc.GeneratorServiceStub(channel)


def _channel(address: str) -> grpc.Channel:
    limit = 64 * 1024 * 1024
    return grpc.insecure_channel(address, options=[
        ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])


def raw_call(address: str, method: str, data: bytes, *, timeout: float = 30) -> grpc.RpcError:
    """Send `data` as the request bytes of `method`; return the error it must end with."""
    with _channel(address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=None,
                                   response_deserializer=None)
        try:
            call(data, timeout=timeout)
        except grpc.RpcError as error:
            return error
    raise AssertionError(f"{method} accepted {len(data)} undecodable bytes")


def varint(value: int) -> bytes:
    """Protobuf base-128 varint encoding of a non-negative int."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packed_zeros(field_number: int, count: int) -> bytes:
    """A packed repeated varint field of `count` zeros (one byte each), as wire bytes."""
    return varint(field_number << 3 | 2) + varint(count) + bytes(count)


