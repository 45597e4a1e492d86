"""The retry policy with no server: a fake stub that fails, then answers. UNAVAILABLE only is
retried, with exponential backoff inside one deadline; a stream is reopened only before its
first chunk; a wrong keyword names the public method."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest

from latentserve.client import (
    AsyncClient,
    Client,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from latentserve.client.transport import ClientConfig, Retry
from latentserve.core.tensors import to_tensor
from latentserve.v1 import generator_pb2 as pb


class Failure(grpc.RpcError):
    """A failed call as grpc raises it (code, details, trailing metadata)."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"fake {self._code.name}"

    def trailing_metadata(self) -> tuple[()]:
        return ()


def _chunk(offset: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(model=pb.ResolvedModel(name="m", version=1), offset=offset,
                               latents=to_tensor(np.zeros((2, 3), np.float32)))


class FakeStub:
    """Answers every unary RPC with `_chunk(0)` after failing with `failures` in turn, and
    streams `chunks` per opening (an int in a list fails the stream there)."""

    def __init__(self, failures: Sequence[grpc.StatusCode] = (), *,
                 streams: Sequence[list[Any]] = (), aio: bool = False) -> None:
        self.failures = list(failures)
        self.streams = list(streams)
        self.aio = aio
        self.calls: list[tuple[str, float]] = []
        self.cancelled = 0

    def __getattr__(self, rpc: str) -> Any:
        def call(request: Any, *, timeout: float, metadata: Any) -> Any:
            self.calls.append((rpc, timeout))
            if rpc.startswith("Stream"):
                return FakeStream(self, self.streams.pop(0))
            if self.failures:
                failure = Failure(self.failures.pop(0))
                if self.aio:
                    return _raise_later(failure)
                raise failure
            return _answer(_chunk(0)) if self.aio else _chunk(0)

        return call


async def _raise_later(failure: Failure) -> Any:
    raise failure


async def _answer(response: pb.GenerateResponse) -> pb.GenerateResponse:
    return response


class FakeStream:
    """One opened server stream: its items, sync or async; an int fails with that code."""

    def __init__(self, stub: FakeStub, items: list[Any]) -> None:
        self.stub, self.items = stub, items

    def _next(self) -> pb.GenerateResponse:
        item = self.items.pop(0)
        if isinstance(item, grpc.StatusCode):
            raise Failure(item)
        return _chunk(item)

    def __iter__(self) -> Iterator[pb.GenerateResponse]:
        while self.items:
            yield self._next()

    async def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]:
        while self.items:
            yield self._next()

    def cancel(self) -> None:
        self.stub.cancelled += 1


UNAVAILABLE, NOT_FOUND = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND


def _client(stub: FakeStub, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Client:
    client = Client("fake:1", **kwargs)
    monkeypatch.setattr(client, "_stub", lambda: stub)
    return client


def test_unavailable_twice_then_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub([UNAVAILABLE, UNAVAILABLE])
    client = _client(stub, monkeypatch, backoff_s=0.05, retries=3)
    started = time.monotonic()
    out = client.sample("m", n=2, timeout_s=5.0)
    assert time.monotonic() - started >= 0.05 + 0.1  # backoff doubles: 0.05, then 0.1
    assert out.model.name == "m" and [rpc for rpc, _ in stub.calls] == ["Sample"] * 3
    timeouts = [t for _, t in stub.calls]
    assert timeouts == sorted(timeouts, reverse=True) and timeouts[0] <= 5.0  # one deadline


def test_retries_run_out(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub([UNAVAILABLE] * 3)
    with pytest.raises(UnavailableError, match="fake UNAVAILABLE"):
        _client(stub, monkeypatch, backoff_s=0.0, retries=2).sample("m")
    assert len(stub.calls) == 3


def test_a_wait_past_the_deadline_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub([UNAVAILABLE] * 10)
    with pytest.raises(UnavailableError):
        _client(stub, monkeypatch, backoff_s=0.2, retries=10).sample("m", timeout_s=0.5)
    assert len(stub.calls) == 2  # waits 0.2; then 0.4 would not fit in what is left of 0.5


@pytest.mark.parametrize("code", [NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL])
def test_other_codes_raise_at_once(monkeypatch: pytest.MonkeyPatch,
                                   code: grpc.StatusCode) -> None:
    stub = FakeStub([code])
    with pytest.raises(Exception) as err:
        _client(stub, monkeypatch, backoff_s=5.0).get_model("m")
    assert getattr(err.value, "status_code", None) == code and len(stub.calls) == 1


def test_stream_reopens_only_before_its_first_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub(streams=[[UNAVAILABLE], [0, 2, UNAVAILABLE], [0]])
    chunks = _client(stub, monkeypatch, backoff_s=0.0).stream_interpolate("m", seeds=[1, 2])
    assert stub.calls == []  # nothing is sent before the first read
    assert [next(chunks).offset, next(chunks).offset] == [0, 2]
    with pytest.raises(UnavailableError):
        next(chunks)
    assert [rpc for rpc, _ in stub.calls] == ["StreamInterpolate"] * 2
    assert stub.cancelled == 2 and len(stub.streams) == 1  # the third opening never happened


def test_leaving_a_stream_early_cancels_it(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub(streams=[[0, 2, 4]])
    chunks = _client(stub, monkeypatch).stream_interpolate("m", seeds=[1, 2])
    assert next(chunks).offset == 0
    chunks.close()  # type: ignore[attr-defined]
    assert stub.cancelled == 1


async def test_async_client_shares_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = FakeStub([UNAVAILABLE, NOT_FOUND], streams=[[UNAVAILABLE], [0, NOT_FOUND]], aio=True)
    client = AsyncClient("fake:1", backoff_s=0.0)
    monkeypatch.setattr(client, "_stub", lambda: stub)
    with pytest.raises(NotFoundError):
        await client.sample("m")
    assert len(stub.calls) == 2
    offsets = []
    with pytest.raises(NotFoundError):
        async for chunk in client.stream_interpolate("m", seeds=[1, 2]):
            offsets.append(chunk.offset)
    assert offsets == [0] and stub.cancelled == 2


def test_retry_policy_alone() -> None:
    retry = Retry(ClientConfig("h:1", retries=2, backoff_s=0.25), 10.0)
    assert 9.0 < retry.timeout() <= 10.0
    assert [retry.wait(Failure(UNAVAILABLE)) for _ in range(2)] == [0.25, 0.5]
    with pytest.raises(UnavailableError):
        retry.wait(Failure(UNAVAILABLE))  # no retry left
    with pytest.raises(InvalidArgumentError):
        Retry(ClientConfig("h:1"), 10.0).wait(Failure(grpc.StatusCode.INVALID_ARGUMENT))
    started = Retry(ClientConfig("h:1"), 10.0)
    started.started = True
    with pytest.raises(UnavailableError):
        started.wait(Failure(UNAVAILABLE))


def test_a_wrong_keyword_names_the_public_method() -> None:
    client = Client("unresolvable.invalid:1")
    with pytest.raises(TypeError, match=r"sample\(\) got an unexpected keyword argument 'seeds'"):
        client.sample("m", seeds=[1])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"stream_interpolate\(\) got an unexpected keyword"):
        client.stream_interpolate("m", n=3)  # type: ignore[call-arg]


async def test_a_wrong_keyword_names_the_async_method() -> None:
    client = AsyncClient("unresolvable.invalid:1")
    with pytest.raises(TypeError, match=r"AsyncClient\.edit\(\) got an unexpected keyword"):
        await client.edit("m", direction="d", strengths=[1], strength=2)  # type: ignore[call-arg]
