"""grpc_errors: each core error → its gRPC status (+ BadRequest details), INTERNAL hiding its
cause, deadlines, undecodable bytes and drain, through a real in-process grpc.aio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from latentserve.core.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    LatentServeError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from latentserve.service.grpc_errors import (
    MAX_MESSAGE_BYTES,
    MAX_VIOLATIONS,
    Admission,
    Outcome,
    add_servicer,
    rich_status,
    rpc,
    rpc_stream,
)
from latentserve.service.metrics import ServiceMetrics
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import field_violations

session_loop = pytest.mark.asyncio(loop_scope="session")  # the server lives on the fixture's loop

RAISED: list[BaseException] = [
    InvalidArgument("n must be between 1 and 4, got 9", field="n"),
    NotFound("no model 'x'"),
    FailedPrecondition("tiny-noenc has no encoder"),
    ResourceExhausted("queue full"),
    Unavailable("backend down"),
    DeadlineExceeded("too slow"),
    RuntimeError("secret internal detail"),
]
"""What Sample raises for seed i (a larger seed answers normally)."""


class Raising(pb_grpc.GeneratorServiceServicer):
    """A servicer whose handlers raise what the request asks for."""

    def __init__(self) -> None:
        self.metrics = ServiceMetrics()
        self.default_deadline_s = 0.3
        self.access_log = False
        self.admission = Admission()

    @rpc("Sample")
    async def Sample(self, request: pb.SampleRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        outcome.model, outcome.items = "m", request.n
        if request.seed < len(RAISED):
            raise RAISED[request.seed]
        return pb.GenerateResponse(model=pb.ResolvedModel(name="m", version=1))

    @rpc("Decode")
    async def Decode(self, request: pb.DecodeRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        await asyncio.sleep(30)  # past the default deadline
        return pb.GenerateResponse()

    @rpc_stream("StreamInterpolate")
    async def StreamInterpolate(self, request: pb.InterpolateRequest, context: Any,
                                outcome: Outcome) -> AsyncGenerator[pb.GenerateResponse, None]:
        yield pb.GenerateResponse(offset=0)
        raise NotFound("direction 'nope'")


class Running:
    def __init__(self, servicer: Raising, stub: pb_grpc.GeneratorServiceStub,
                 channel: grpc.aio.Channel) -> None:
        self.servicer, self.stub, self.channel = servicer, stub, channel


@pytest.fixture(scope="module")
async def running() -> AsyncIterator[Running]:
    servicer = Raising()  # type: ignore[abstract]  # the other RPCs answer UNIMPLEMENTED
    server = grpc.aio.server()
    add_servicer(servicer, server, pb.DESCRIPTOR.services_by_name["GeneratorService"])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Running(servicer, pb_grpc.GeneratorServiceStub(channel), channel)
    await server.stop(None)



async def refusal(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


@pytest.mark.parametrize("seed", range(len(RAISED) - 1))
@session_loop
async def test_each_core_error_becomes_its_status(running: Running, seed: int) -> None:
    raised = RAISED[seed]
    assert isinstance(raised, LatentServeError)
    error = await refusal(running.stub.Sample(pb.SampleRequest(seed=seed, n=2), timeout=10))
    assert error.code().value[0] == int(raised.status)
    assert error.details() == raised.message
    expected = [("n", raised.message)] if isinstance(raised, InvalidArgument) else []
    assert field_violations(error) == expected
    code = error.code().name
    counted = running.servicer.metrics.registry.get_sample_value(
        "latentserve_requests_total", {"rpc": "Sample", "model": "m", "code": code})
    assert counted is not None and counted >= 1


@session_loop
async def test_internal_errors_hide_their_cause(running: Running) -> None:
    error = await refusal(running.stub.Sample(pb.SampleRequest(seed=len(RAISED) - 1),
                                              timeout=10))
    assert error.code() == grpc.StatusCode.INTERNAL
    details = error.details() or ""
    assert "secret" not in details and "request id" in details
    assert field_violations(error) == []


@session_loop
async def test_a_handler_past_its_deadline_answers_deadline_exceeded(running: Running) -> None:
    error = await refusal(running.stub.Decode(pb.DecodeRequest()))  # no client deadline
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "within its deadline of 0.300 s" in (error.details() or "")


@session_loop
async def test_undecodable_request_bytes_are_invalid_argument(running: Running) -> None:
    raw = running.channel.unary_unary("/latentserve.v1.GeneratorService/Sample")
    error = await refusal(raw(b"\x12\x05abc", timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(error)] == ["request"]


@session_loop
async def test_a_stream_ends_with_the_mapped_status(running: Running) -> None:
    call = running.stub.StreamInterpolate(pb.InterpolateRequest(), timeout=10)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for chunk in call:
            received.append(chunk)
    assert len(received) == 1 and info.value.code() == grpc.StatusCode.NOT_FOUND


@session_loop
async def test_a_draining_server_answers_unavailable(running: Running) -> None:
    running.servicer.admission.draining = True
    try:
        error = await refusal(running.stub.Sample(pb.SampleRequest(seed=99), timeout=10))
    finally:
        running.servicer.admission.draining = False
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    reply = await running.stub.Sample(pb.SampleRequest(seed=99), timeout=10)
    assert reply.model.name == "m" and running.servicer.admission.active == 0


def test_status_text_and_violations_are_bounded() -> None:
    many = [FieldViolation(f"f{i}", "bad") for i in range(MAX_VIOLATIONS + 3)]
    status = rich_status(InvalidArgument("é" * 2000, violations=many))
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
    assert status.message.endswith("(cut)")
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad) and len(bad.field_violations) == MAX_VIOLATIONS
    assert rich_status(NotFound("x")).details == []
