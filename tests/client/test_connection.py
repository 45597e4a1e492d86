"""Client plumbing without a latentserve service: lazy channels, closing, argument checks
before any I/O, retries on UNAVAILABLE within the deadline, no retry on other statuses."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from latentserve.client import AsyncClient, Client, LatentServeClientError, UnavailableError
from latentserve.client.transport import ClientConfig
from tests.fixtures.service import closed_port


def test_unreachable_service_is_retried_then_unavailable() -> None:
    client = Client(closed_port(), retries=2, backoff_s=0.05, timeout_s=10.0)
    started = time.monotonic()
    with client, pytest.raises(UnavailableError) as err:
        client.list_models()
    assert time.monotonic() - started >= 0.05 + 0.1  # both backoff waits happened
    assert err.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert str(err.value).startswith("UNAVAILABLE: ")


def test_retries_stop_at_the_deadline() -> None:
    started = time.monotonic()
    with (
        Client(closed_port(), retries=50, backoff_s=0.2) as client,
        pytest.raises(UnavailableError),
    ):
        client.get_model("m", timeout_s=0.5)
    assert time.monotonic() - started < 3.0


def test_other_statuses_are_not_retried(bare_server: str) -> None:
    started = time.monotonic()
    with (
        Client(bare_server, retries=3, backoff_s=2.0) as client,
        pytest.raises(LatentServeClientError) as err,
    ):
        client.sample("m", n=1)
    assert err.value.status_code == grpc.StatusCode.UNIMPLEMENTED
    assert time.monotonic() - started < 2.0


def test_stream_errors_surface_on_iteration(bare_server: str) -> None:
    with Client(bare_server) as client:
        chunks = client.stream_interpolate("m", seeds=[1, 2], steps=4)
        with pytest.raises(LatentServeClientError) as err:
            next(chunks)
    assert err.value.status_code == grpc.StatusCode.UNIMPLEMENTED


def test_arguments_are_checked_before_connecting() -> None:
    client = Client("unresolvable.invalid:1")  # lazily connects: constructing is fine
    with pytest.raises(ValueError, match="n must be between"):
        client.sample("m", n=-1)
    with pytest.raises(ValueError, match="exactly one of seeds= or latents="):
        client.stream_interpolate("m", steps=4)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        client.list_models(timeout_s=0)
    with pytest.raises(ValueError, match="give version= or alias=, not both"):
        client.get_model("m", version=1, alias="a")
    with pytest.raises(ValueError, match=r"latents must be an \[n, N\] array"):
        client.decode("m", np.zeros(3))


def test_closed_client_refuses_calls() -> None:
    client = Client(closed_port())
    client.close()
    client.close()  # idempotent
    with pytest.raises(RuntimeError, match="is closed"):
        client.list_models()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": ""}, "address"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"retries": -1}, "retries"),
        ({"backoff_s": -0.1}, "backoff_s"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"address": "h:1", **kwargs}
    with pytest.raises(ValueError, match=message):
        ClientConfig(**args)  # type: ignore[arg-type]


def test_config_channel_options_and_metadata() -> None:
    cfg = ClientConfig("h:1", max_message_bytes=123, backoff_s=0.25, token="s3cret")
    options = dict(cfg.channel_options())
    assert options["grpc.max_send_message_length"] == 123
    assert options["grpc.max_receive_message_length"] == 123
    assert options["grpc.min_reconnect_backoff_ms"] == 250
    assert cfg.metadata() == (("authorization", "Bearer s3cret"),)
    assert ClientConfig("h:1").metadata() == ()
    assert [cfg.backoff(i) for i in range(3)] == [0.25, 0.5, 1.0]


async def test_async_client_unreachable_is_unavailable() -> None:
    async with AsyncClient(closed_port(), retries=1, backoff_s=0.01) as client:
        with pytest.raises(UnavailableError):
            await client.sample("m", n=2, seed=1)
        with pytest.raises(UnavailableError):
            async for _ in client.stream_interpolate("m", seeds=[1, 2], steps=3):
                pass
    with pytest.raises(RuntimeError, match="is closed"):
        await client.list_models()


async def test_async_client_statuses_and_argument_checks(bare_server: str) -> None:
    async with AsyncClient(bare_server, retries=3, backoff_s=2.0) as client:
        with pytest.raises(ValueError, match="output must be one of"):
            await client.sample("m", output="gif")
        with pytest.raises(ValueError, match="exactly one of seeds= or latents="):
            client.stream_interpolate("m")
        started = time.monotonic()
        with pytest.raises(LatentServeClientError) as err:
            await client.edit("m", seeds=[1], direction="d", strengths=[1.0])
        assert err.value.status_code == grpc.StatusCode.UNIMPLEMENTED
        assert time.monotonic() - started < 2.0
