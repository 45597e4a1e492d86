"""Client.project / project_stream and the async forms against a real server."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from latentserve.client import AsyncClient, Client
from latentserve.client.errors import InvalidArgumentError
from latentserve.client.projection import Projection
from latentserve.service.devtools.background import BackgroundServer


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Client:
    with Client(server.address, timeout_s=60) as c:
        yield c


def test_project_returns_the_result_and_reports_progress(client: Client) -> None:
    target = client.sample("tiny", n=1, seed=21).images
    seen: list[Projection] = []
    result = client.project("tiny", target, steps=8, on_progress=seen.append)
    assert result.done and result.stop == "steps" and seen[-1] is result
    assert [u.step for u in seen] == list(range(9))
    assert result.latents.shape == (1, 4) and result.psnr is not None
    assert result.psnr[0] > 20 and result.images is not None
    assert result.to_pil()[0].size == (8, 8)


def test_project_a_png_file_and_pick_the_label(client: Client, tmp_path: object) -> None:
    target = client.sample("tiny-cond", n=1, seed=3, class_labels=[1], output="uint8").images
    assert target is not None
    path = tmp_path / "mine.png"  # type: ignore[operator]
    Image.fromarray(target[0, 0]).save(path)
    result = client.project("tiny-cond", path, steps=3, init="prior")
    assert result.class_labels == [1]


def test_leaving_the_stream_early_cancels(client: Client) -> None:
    target = client.sample("tiny-noenc", n=1, seed=2).images
    for update in client.project_stream("tiny-noenc", target, steps=2000):
        assert not update.done
        break
    assert client.sample("tiny-noenc", n=1).images is not None


def test_client_mistakes_name_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.project("tiny", np.zeros((1, 1, 8, 8), np.float32), steps=10**6)
    assert "steps" in str(info.value)
    buf = io.BytesIO()
    Image.new("L", (9, 9)).save(buf, format="PNG")
    with pytest.raises(InvalidArgumentError):
        client.project("tiny", buf.getvalue())


def test_async_project_and_stream(server: BackgroundServer) -> None:
    async def run() -> tuple[Projection, list[int]]:
        async with AsyncClient(server.address, timeout_s=60) as aclient:
            target = (await aclient.sample("tiny", n=1, seed=4)).images
            steps = [u.step async for u in aclient.project_stream("tiny", target, steps=3)]
            return await aclient.project("tiny", target, steps=3), steps

    result, steps = asyncio.run(run())
    assert result.done and steps == [0, 1, 2, 3]
