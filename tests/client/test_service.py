"""The SDK against a real latentserve server (embedded backend, tiny generators from the
session registry: "tiny" N=4 1×8×8 with encoder, "tiny-cond" 3 classes, "tiny-noenc")."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentserve.cli.client_commands import app
from latentserve.client import (
    AsyncClient,
    Client,
    FailedPreconditionError,
    InvalidArgumentError,
    LatentServeClientError,
    ModelRef,
    NotFoundError,
)
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Iterator[Client]:
    with Client(server.address, timeout_s=30.0) as c:
        yield c


def _prior(seed: int, n: int, dim: int = 4) -> np.ndarray:
    rows = [
        np.random.default_rng(np.random.SeedSequence([seed, i])).standard_normal(dim)
        for i in range(n)
    ]
    return np.asarray(rows).astype(np.float32)


def test_sample_is_reproducible_locally(client: Client) -> None:
    out = client.sample("tiny", n=8, seed=1)
    assert out.latents.shape == (8, 4) and out.images is not None
    assert out.images.shape == (8, 1, 8, 8) and out.images.dtype == np.float32
    assert (out.model.name, out.model.version, out.model.alias) == ("tiny", 1, "production")
    np.testing.assert_array_equal(out.latents, _prior(1, 8))
    assert out.output_range is not None  # sent with the images, for to_pil()
    assert len(out.to_pil()) == 8 and out.grid(ncols=4).size == (32, 16)
    psi = client.sample("tiny", n=8, seed=1, truncation_psi=0.5)
    np.testing.assert_allclose(psi.latents, 0.5 * out.latents, rtol=1e-6)


class CountingStub:
    """A client's stub that records the name of every RPC started through it."""

    def __init__(self, stub: Any) -> None:
        self.stub, self.rpcs = stub, list[str]()

    def __getattr__(self, rpc: str) -> Any:
        self.rpcs.append(rpc)
        return getattr(self.stub, rpc)


def test_float_images_become_pixels_without_a_get_model(server: BackgroundServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(server.address) as client:
        counting = CountingStub(client._stub())
        monkeypatch.setattr(client, "_stub", lambda: counting)
        out = client.sample("tiny-cond", n=3, seed=11, class_labels=[0, 1, 2])
        chunks = list(client.stream_interpolate("tiny", seeds=[1, 2], steps=4))
        assert len(out.to_pil()) == 3 and sum(len(c.to_pil()) for c in chunks) == 4
    assert counting.rpcs == ["Sample", "StreamInterpolate"]
    assert out.output_range is not None and chunks[0].output_range == out.output_range


@pytest.mark.parametrize("model", ["tiny", "tiny-w"])
def test_server_uint8_and_sdk_to_pil_agree(client: Client, model: str) -> None:
    z = np.random.default_rng(3).standard_normal((32, client.get_model(model).editing_dim))
    floats = client.decode(model, z * 3.0)
    as_uint8 = client.decode(model, z * 3.0, output="uint8")
    as_png = client.decode(model, z * 3.0, output="png")
    assert floats.output_range == client.get_model(model).output_range
    sdk = np.stack([np.asarray(p) for p in floats.to_pil()])
    assert as_uint8.images is not None
    np.testing.assert_array_equal(sdk, as_uint8.images[:, 0])
    np.testing.assert_array_equal(sdk, np.stack([np.asarray(p) for p in as_png.to_pil()]))


@pytest.mark.parametrize("model", ["tiny:1", "tiny@production", ModelRef("tiny", version=1)])
def test_model_reference_forms(client: Client, model: object) -> None:
    out = client.sample(model, n=1, output="latents")  # type: ignore[arg-type]
    assert out.model.version == 1 and out.images is None and out.png == []
    again = client.sample(out.model, n=1, output="latents")  # ResolvedModel pins the version
    assert again.model.version == 1 and again.model.alias == ""


def test_output_formats(client: Client) -> None:
    as_uint8 = client.sample("tiny", n=3, seed=2, output="uint8")
    assert as_uint8.images is not None and as_uint8.images.dtype == np.uint8
    as_png = client.sample("tiny", n=3, seed=2, output="png")
    assert as_png.images is None and len(as_png.png) == 3
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(p))) for p in as_png.png])
    np.testing.assert_array_equal(decoded, as_uint8.images[:, 0])


def test_interpolate_and_stream_agree(client: Client) -> None:
    path = client.interpolate("tiny", seeds=[1, 2, 3], steps=8, method="slerp")
    assert path.latents.shape == (15, 4) and path.images is not None
    np.testing.assert_allclose(path.latents[0], _prior(1, 1)[0], rtol=1e-6)
    np.testing.assert_allclose(path.latents[-1], _prior(3, 1)[0], rtol=1e-5, atol=1e-6)
    chunks = list(client.stream_interpolate("tiny", seeds=[1, 2, 3], steps=8, method="slerp"))
    assert [c.offset for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    np.testing.assert_array_equal(np.concatenate([c.latents for c in chunks]), path.latents)
    keys = _prior(5, 2)
    lerp = client.interpolate("tiny", latents=keys, steps=3, method="lerp", output="latents")
    np.testing.assert_allclose(lerp.latents[1], keys.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_edit_sweep_rows_are_base_major(client: Client) -> None:
    info = client.get_model("tiny")
    name = info.directions[0].name
    sweep = client.edit(
        "tiny", seeds=[1, 2], direction=name, strengths=[-1, 0, 1], output="latents"
    )
    assert sweep.latents.shape == (6, 4)
    np.testing.assert_allclose(
        sweep.latents[[1, 4]], _prior(1, 1).tolist() + _prior(2, 1).tolist(), rtol=1e-6
    )
    step = sweep.latents[2] - sweep.latents[1]
    assert np.linalg.norm(step) == pytest.approx(info.directions[0].sigma, rel=1e-4)
    vector = client.edit(
        "tiny",
        latents=_prior(1, 1),
        direction=np.eye(4)[0] * 3.0,
        strengths=[2.0],
        output="latents",
    )
    np.testing.assert_allclose(vector.latents[0] - _prior(1, 1)[0], [2.0, 0, 0, 0], atol=1e-5)


def test_encode_inverts_decode(client: Client) -> None:
    z = _prior(7, 4) * 0.5
    again = client.decode("tiny", z)
    assert again.images is not None
    np.testing.assert_allclose(client.encode("tiny", again.images).latents, z, atol=1e-3)
    pil = again.to_pil()
    from_png = client.encode("tiny", pil).latents  # PIL images travel as PNG (8-bit)
    assert from_png.shape == (4, 4) and np.abs(from_png - z).max() < 0.5


def test_models_and_info(client: Client) -> None:
    names = {m.name: m for m in client.list_models()}
    assert {"tiny", "tiny-cond", "tiny-noenc"} <= set(names)
    assert names["tiny"].aliases.get("production") == 1 and 1 in names["tiny"].versions
    info = client.get_model("tiny-cond")
    assert (info.latent_dim, info.output_shape, info.num_classes) == (4, (1, 8, 8), 3)
    assert info.has_encoder and len(info.class_names) == 3 and "production" in info.aliases
    assert all(d.sigma > 0 and d.unit for d in info.directions)


def test_conditional_sampling(client: Client) -> None:
    out = client.sample("tiny-cond", n=3, seed=0, class_labels=[0, 1, 2])
    assert out.images is not None and out.images.shape == (3, 1, 8, 8)
    same_z = client.sample("tiny-cond", n=3, seed=0, class_labels=0)
    np.testing.assert_array_equal(out.latents, same_z.latents)
    assert not np.allclose(out.images[1:], same_z.images[1:])  # type: ignore[index]


def test_errors_are_typed(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        client.sample("tiny", n=0)
    assert [v.field for v in err.value.field_violations] == ["n"]
    with pytest.raises(InvalidArgumentError) as err:
        client.decode("tiny", np.zeros((2, 5), np.float32))
    assert err.value.field_violations[0].field.startswith("latents")
    with pytest.raises(NotFoundError):
        client.get_model("no-such-model")
    with pytest.raises(NotFoundError):
        client.edit("tiny", seeds=[1], direction="no-such-direction", strengths=[1])
    with pytest.raises(FailedPreconditionError):
        client.encode("tiny-noenc", np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(FailedPreconditionError):
        client.sample("tiny", n=1, class_labels=[0])


async def test_async_client(server: BackgroundServer) -> None:
    async with AsyncClient(server.address) as client:
        out = await client.sample("tiny", n=4, seed=1)
        np.testing.assert_array_equal(out.latents, _prior(1, 4))
        assert out.output_range is not None
        chunks = [c async for c in client.stream_interpolate("tiny", seeds=[1, 2], steps=5)]
        assert sum(len(c) for c in chunks) == 5
        info = await client.get_model("tiny")
        decoded = await client.decode("tiny", out.latents)
        assert decoded.images is not None
        z = (await client.encode("tiny", decoded.images)).latents
        np.testing.assert_allclose(z, out.latents, atol=1e-3)
        assert info.model.version == 1 and len(await client.list_models()) >= 3
        with pytest.raises(InvalidArgumentError):
            await client.interpolate("tiny", seeds=[1], steps=4)


def test_cli_commands_write_grids(server: BackgroundServer, tmp_path: Path) -> None:
    address = ["--address", server.address]
    listing = runner.invoke(app, ["models", *address])
    assert listing.exit_code == 0 and "tiny-cond" in listing.stdout
    info = runner.invoke(app, ["info", "tiny-cond", *address])
    assert info.exit_code == 0 and "directions" in info.stdout

    grid = tmp_path / "grid.png"
    done = runner.invoke(
        app,
        [
            "sample",
            "--model",
            "tiny-cond",
            "--n",
            "6",
            "--labels",
            "0,1,2,0,1,2",
            "--out",
            str(grid),
            *address,
        ],
    )
    assert done.exit_code == 0, done.output
    assert Image.open(grid).size == (3 * 8 + 2 * 2, 2 * 8 + 2)

    strip = tmp_path / "strip.png"
    done = runner.invoke(
        app,
        [
            "interpolate",
            "--model",
            "tiny",
            "--seeds",
            "1,2,3",
            "--steps",
            "4",
            "--out",
            str(strip),
            *address,
        ],
    )
    assert done.exit_code == 0, done.output
    assert Image.open(strip).size == (7 * 8 + 6 * 2, 8)

    sweep = tmp_path / "sweep.png"
    done = runner.invoke(
        app,
        [
            "edit",
            "--model",
            "tiny",
            "--seeds",
            "1,2",
            "--direction",
            "d0",
            "--strengths=-2,-1,0,1,2",
            "--conditional-on",
            "pc0",
            "--out",
            str(sweep),
            *address,
        ],
    )
    assert done.exit_code == 0, done.output
    assert Image.open(sweep).size == (5 * 8 + 4 * 2, 2 * 8 + 2)  # rows = seeds

    bad = runner.invoke(app, ["sample", "--model", "nope", *address])
    assert bad.exit_code == 1 and bad.stderr.startswith("NOT_FOUND: ")


def test_bearer_token(registry_uri: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file)
    with BackgroundServer(settings) as bg:
        with Client(bg.address, token="s3cret") as client:
            assert client.sample("tiny", n=1, output="latents").model.name == "tiny"
        with (
            Client(bg.address, token="wrong") as client,
            pytest.raises(LatentServeClientError) as err,
        ):
            client.list_models()
        assert err.value.status_code == grpc.StatusCode.UNAUTHENTICATED
