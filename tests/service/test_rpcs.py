"""Every RPC through the SDK against a real server (embedded backend, real MLflow registry)."""

from __future__ import annotations

import asyncio
import io
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from latentserve.client import AsyncClient, Client
from latentserve.core import latent_ops, seeding
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import HEALTH_SERVICE_NAME
from tests.fixtures.service import metric_value


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Client:
    with Client(server.address, timeout_s=30) as c:
        yield c


def test_sample_shapes_version_and_seeded_latents(client: Client) -> None:
    out = client.sample("tiny", n=8, seed=1)
    assert out.latents.shape == (8, 4)
    assert out.images is not None and out.images.shape == (8, 1, 8, 8)
    assert out.images.dtype == np.float32
    assert (out.model.name, out.model.version, out.model.alias) == ("tiny", 1, "production")
    np.testing.assert_array_equal(out.latents, seeding.sample_latents(1, 8, 4))
    assert float(out.images.min()) >= 0.0 and float(out.images.max()) <= 1.0


def test_same_seed_same_items_whatever_n_or_batch_split(client: Client) -> None:
    small = client.sample("tiny", n=8, seed=7)
    large = client.sample("tiny", n=40, seed=7)     # 40 > max_batch_size 16: three chunks
    np.testing.assert_array_equal(large.latents[:8], small.latents)
    assert large.images is not None and small.images is not None
    np.testing.assert_array_equal(large.images[:8], small.images)
    tail = client.decode("tiny", large.latents[32:])
    assert tail.images is not None
    np.testing.assert_array_equal(tail.images, large.images[32:])


def test_truncation_shrinks_toward_center(client: Client) -> None:
    full = client.sample("tiny", n=4, seed=3, output="latents")
    half = client.sample("tiny", n=4, seed=3, truncation_psi=0.5, output="latents")
    np.testing.assert_allclose(half.latents, 0.5 * full.latents, rtol=1e-6)
    assert half.images is None


@pytest.mark.parametrize("method", ["lerp", "slerp", "vp_lerp"])
def test_interpolate_paths(client: Client, method: str) -> None:
    path = client.interpolate("tiny", seeds=[1, 2, 3], steps=5, method=method)
    assert path.latents.shape == (9, 4)
    keys = np.stack([seeding.sample_latents(s, 1, 4)[0] for s in (1, 2, 3)])
    np.testing.assert_array_equal(path.latents[[0, 4, 8]], keys)
    np.testing.assert_allclose(path.latents, latent_ops.interpolate_path(keys, 5, method),
                               atol=1e-6)
    if method == "slerp":  # the default in Z
        default = client.interpolate("tiny", seeds=[1, 2, 3], steps=5)
        np.testing.assert_array_equal(default.latents, path.latents)


def test_stream_interpolate_equals_interpolate(client: Client) -> None:
    whole = client.interpolate("tiny", seeds=[1, 2, 3], steps=20)
    chunks = list(client.stream_interpolate("tiny", seeds=[1, 2, 3], steps=20))
    assert [c.offset for c in chunks] == [0, 16, 32]
    np.testing.assert_array_equal(np.concatenate([c.latents for c in chunks]), whole.latents)
    assert whole.images is not None
    np.testing.assert_array_equal(np.concatenate([c.images for c in chunks]), whole.images)


def test_edit_rows_are_base_major_in_direction_units(client: Client) -> None:
    info = client.get_model("tiny")
    d0 = next(d for d in info.directions if d.name == "d0")
    sweep = client.edit("tiny", seeds=[1, 2], direction="d0", strengths=[-2, 0, 2])
    base = np.stack([seeding.sample_latents(s, 1, 4)[0] for s in (1, 2)])
    assert sweep.latents.shape == (6, 4)
    np.testing.assert_array_equal(sweep.latents[[1, 4]], base)
    moved = sweep.latents[2] - base[0]
    assert np.linalg.norm(moved) == pytest.approx(2 * d0.sigma, rel=1e-5)


def test_conditional_edit_holds_other_directions_fixed(client: Client) -> None:
    unit = _unit_direction(client, "pc0")
    sweep = client.edit("tiny", seeds=[5], direction="d0", strengths=[-3, 3],
                        conditional_on=["pc0"], output="latents")
    delta = sweep.latents[1] - sweep.latents[0]
    assert abs(float(delta @ unit)) < 1e-5
    plain = client.edit("tiny", seeds=[5], direction="d0", strengths=[-3, 3], output="latents")
    assert abs(float((plain.latents[1] - plain.latents[0]) @ unit)) > 1e-3


def _unit_direction(client: Client, name: str) -> np.ndarray:
    moved = client.edit("tiny", latents=np.zeros((1, 4), np.float32), direction=name,
                        strengths=[1.0], output="latents").latents[0]
    return moved / np.linalg.norm(moved)


def test_edit_with_a_caller_vector(client: Client) -> None:
    vector = np.array([3.0, 0, 0, 4.0], np.float32)
    out = client.edit("tiny", latents=np.zeros((1, 4), np.float32), direction=vector,
                      strengths=[1.0], output="latents")
    np.testing.assert_allclose(out.latents[0], vector / 5.0, atol=1e-6)


def test_encode_inverts_decode_from_arrays_and_png(client: Client) -> None:
    z = latent_ops.truncate(seeding.sample_latents(11, 6, 4), 0.5)
    decoded = client.decode("tiny", z)
    assert decoded.images is not None
    np.testing.assert_allclose(client.encode("tiny", decoded.images).latents, z, atol=1e-3)
    pngs = client.decode("tiny", z, output="png").png
    assert len(pngs) == 6
    np.testing.assert_allclose(client.encode("tiny", pngs).latents, z, atol=0.1)


def test_conditional_model_uses_labels(client: Client) -> None:
    one = client.sample("tiny-cond", n=3, seed=0, class_labels=[1])
    per_item = client.sample("tiny-cond", n=3, seed=0, class_labels=[1, 1, 1])
    other = client.sample("tiny-cond", n=3, seed=0, class_labels=[0, 1, 2])
    assert one.images is not None and per_item.images is not None and other.images is not None
    np.testing.assert_array_equal(one.images, per_item.images)
    assert not np.array_equal(one.images[0], other.images[0])
    np.testing.assert_array_equal(one.images[1], other.images[1])


def test_output_formats(client: Client) -> None:
    f32 = client.sample("tiny", n=3, seed=2)
    u8 = client.sample("tiny", n=3, seed=2, output="uint8")
    png = client.sample("tiny", n=3, seed=2, output="png")
    assert f32.images is not None and u8.images is not None
    assert u8.images.dtype == np.uint8
    np.testing.assert_array_equal(u8.images, np.clip(np.rint(f32.images * 255), 0, 255))
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in png.png])
    np.testing.assert_array_equal(decoded, u8.images[:, 0])


def test_large_responses(client: Client) -> None:
    f32 = client.sample("tiny", n=256, seed=0)
    assert f32.images is not None and f32.images.shape == (256, 1, 8, 8)
    png = client.sample("tiny", n=256, seed=0, output="png")
    assert len(png.png) == 256


def test_catalogue(client: Client) -> None:
    models = {m.name: m for m in client.list_models()}
    assert {"tiny", "tiny-cond", "tiny-noenc"} <= set(models)
    assert models["tiny"].aliases["production"] == 1
    assert models["tiny"].loaded_version == 1
    info = client.get_model("tiny")
    assert info.latent_dim == 4 and info.output_shape == (1, 8, 8)
    assert [d.name for d in info.directions] == ["d0", "pc0", "sefa0"]
    assert info.has_encoder and info.num_classes == 0
    assert "production" in info.aliases
    cond = client.get_model("tiny-cond")
    assert cond.num_classes == 3 and len(cond.class_names) == 3
    assert not client.get_model("tiny-noenc").has_encoder
    assert client.get_model("tiny", version=1).model.version == 1


SEED_BASE = 7_000_000
"""Seeds no other test asks for: the responses cannot come from the response cache."""


async def test_async_client_under_concurrency(
        server: BackgroundServer, backend: str, request: pytest.FixtureRequest) -> None:
    """64 concurrent n=1 calls: right per-caller results, every row computed once. (Whether
    they share backend calls depends on timing here; the batcher's merging is tested
    deterministically in test_batching.py and, against Triton, test_triton_backend.py.)"""
    if backend == "embedded":
        def counts() -> tuple[float, float]:
            return (metric_value(server, "latentserve_backend_batch_size_count", model="tiny"),
                    metric_value(server, "latentserve_backend_batch_size_sum", model="tiny"))
    else:
        triton_metric = request.getfixturevalue("triton_metric")

        def counts() -> tuple[float, float]:
            return (triton_metric("nv_inference_exec_count", "tiny__v1"),
                    triton_metric("nv_inference_count", "tiny__v1"))

    calls_before, rows_before = counts()
    async with AsyncClient(server.address, timeout_s=60) as client:
        results = await asyncio.gather(
            *(client.sample("tiny", n=1, seed=SEED_BASE + i) for i in range(64)))
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out.latents[0],
                                      seeding.sample_latents(SEED_BASE + i, 1, 4)[0])
    deadline = time.monotonic() + 10   # Triton counts a request just after answering it
    while True:
        calls, rows = counts()[0] - calls_before, counts()[1] - rows_before
        if rows >= 64 or time.monotonic() > deadline:
            break
    assert rows == 64 and 1 <= calls <= 64


async def test_async_client_covers_every_rpc(server: BackgroundServer) -> None:
    async with AsyncClient(server.address) as client:
        out = await client.sample("tiny", n=2, seed=1)
        path = await client.interpolate("tiny", seeds=[1, 2], steps=3)
        chunks = [c async for c in client.stream_interpolate("tiny", seeds=[1, 2], steps=3)]
        sweep = await client.edit("tiny", seeds=[1], direction="d0", strengths=[0, 1])
        assert out.images is not None
        z = (await client.encode("tiny", out.images)).latents
        again = await client.decode("tiny", z)
        models = await client.list_models()
        info = await client.get_model("tiny")
    assert path.latents.shape == (3, 4) and len(chunks) == 1
    assert sweep.latents.shape == (2, 4) and again.latents.shape == (2, 4)
    assert any(m.name == "tiny" for m in models) and info.latent_dim == 4


def test_health_reflection_and_metrics_endpoint(server: BackgroundServer) -> None:
    assert server.server is not None
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ["", HEALTH_SERVICE_NAME, "tiny", "tiny-cond", "tiny-noenc", "tiny-w"]:
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert HEALTH_SERVICE_NAME in names
    with Client(server.address) as client:
        client.sample("tiny", n=1)
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    assert 'latentserve_requests_total{code="OK",model="tiny",rpc="Sample"}' in text
