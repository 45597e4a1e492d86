"""Attack regression (issue 15 item 7): fuzzed request bytes for every RPC get a deliberate
status — never UNKNOWN (undecodable bytes) or INTERNAL. Hypothesis, fixed seed, bounded count."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from tests.fixtures.attack import SERVICE

METHODS = {m.name: m.server_streaming
           for m in pb.DESCRIPTOR.services_by_name["GeneratorService"].methods}
EXPECTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
SEEDS = {
    "Sample": pb.SampleRequest(n=2, seed=3, truncation_psi=0.7).SerializeToString(),
    "Interpolate": pb.InterpolateRequest(
        keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])), steps=3).SerializeToString(),
    "Edit": pb.EditRequest(base=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                           direction_name="d0", strengths=[1.0]).SerializeToString(),
}


def _mutated(method: str) -> st.SearchStrategy[bytes]:
    base = SEEDS.get(method, SEEDS["Sample"])
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)),
                     max_size=4)
    return flips.map(lambda changes: bytes(
        _apply(bytearray(base), changes)))


def _apply(data: bytearray, changes: list[tuple[int, int]]) -> bytearray:
    for index, value in changes:
        data[index] = value
    return data


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fuzzed_request_bytes_get_a_deliberate_status(attack_server: BackgroundServer,
                                                      method: str) -> None:
    streaming = METHODS[method]
    with grpc.insecure_channel(attack_server.address) as channel:
        path = f"/{SERVICE}/{method}"
        call = (channel.unary_stream if streaming else channel.unary_unary)(
            path, request_serializer=None, response_deserializer=None)

        @settings(max_examples=60, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.one_of(st.binary(max_size=64), _mutated(method)))
        def check(data: bytes) -> None:
            try:
                result = call(data, timeout=30)
                if streaming:
                    list(result)
            except grpc.RpcError as error:
                assert error.code() in EXPECTED, (data, error.code(), error.details())

        check()
