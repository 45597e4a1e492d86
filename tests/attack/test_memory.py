"""Attack regressions, memory (second pass, items 1 and 7): what a refused request leaves
behind, and what a cached response really costs.

Memory is measured in-process: objects kept alive only by reference cycles (found by the cyclic
collector with DEBUG_SAVEALL) and tracemalloc deltas; nothing is timed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import grpc
import pytest

from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.attack import packed_zeros, raw_call


@pytest.fixture
def cyclic_garbage() -> Iterator[list[object]]:
    """Objects that only the cyclic collector would free, gathered while the test runs (the
    collector is off meanwhile, as between two of its runs in production)."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
    finally:
        gc.collect()
        found.extend(gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


def _garbage_requests() -> list[object]:
    gc.collect()
    held = [o for o in gc.garbage if type(o).__name__.endswith("Request")]
    gc.garbage.clear()
    return held


# ------------------------------------------------------------------ item 1: refused floods
@pytest.mark.parametrize("rpc", ["Sample", "StreamInterpolate"])
def test_refused_request_is_freed_without_the_cyclic_collector(
        attack_server: BackgroundServer, attack_stub: pb_grpc.GeneratorServiceStub,
        cyclic_garbage: list[object], rpc: str) -> None:
    # 4·10⁶ labels (4 MB on the wire, ~45 MB parsed); the 40 MB floods kept 410-820 MiB
    # each until the collector ran: exception → traceback → wrapper frame → request.
    if rpc == "Sample":
        head = pb.SampleRequest(n=1).SerializeToString()
        error = raw_call(attack_server.address, rpc, head + packed_zeros(5, 4_000_000))
    else:
        head = pb.InterpolateRequest(steps=2).SerializeToString()
        with grpc.insecure_channel(attack_server.address) as channel:
            call = channel.unary_stream(f"/latentserve.v1.GeneratorService/{rpc}",
                                        request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as info:
                list(call(head + packed_zeros(5, 4_000_000), timeout=30))
        error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    attack_stub.ListModels(pb.ListModelsRequest(), timeout=30)  # the refusal has finished
    held = _garbage_requests()
    assert not held, f"{len(held)} refused request(s) kept alive by a reference cycle"
