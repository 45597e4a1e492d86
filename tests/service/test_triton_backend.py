"""TritonBackend on a real tritonserver (python flavour): parity, batching, versions, errors."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from latentserve.core.errors import BackendError, Unavailable
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.triton.export import triton_load_files, triton_model_config
from latentserve.service.backends.triton import TritonBackend, shared_client
from latentserve.service.devtools.processes import free_port
from latentserve.service.devtools.triton_local import TritonProcess
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings
from tests.fixtures.tiny import build_tiny_bundle

pytestmark = [pytest.mark.triton, pytest.mark.asyncio(loop_scope="session")]


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


@pytest.fixture(scope="module")
def cond_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_tiny_bundle(tmp_path_factory.mktemp("cond") / "b", name="tcond", num_classes=3)


@pytest.fixture(scope="module")
async def cond_backend(
    cond_bundle: Bundle, triton_settings: Settings
) -> AsyncIterator[TritonBackend]:
    backend = TritonBackend(cond_bundle, triton_settings, 1)
    await backend.load()
    assert backend.ready
    yield backend
    await backend.unload()


async def test_decode_encode_match_onnxruntime(
    cond_backend: TritonBackend, cond_bundle: Bundle
) -> None:
    rng = np.random.default_rng(1)
    n = 37  # > max_batch_size 16: three requests
    z = rng.standard_normal((n, 4)).astype(np.float32)
    labels = rng.integers(0, 3, n).astype(np.int64)
    images = await cond_backend.decode(z, labels)
    expected = run_onnx(cond_bundle.decoder_path, {"z": z, "label": labels})[0]
    assert images.shape == (n, 1, 8, 8) and images.dtype == np.float32
    assert np.max(np.abs(images - expected)) <= 1e-5
    assert cond_bundle.encoder_path is not None
    mu = await cond_backend.encode(images, labels)
    expected_mu = run_onnx(cond_bundle.encoder_path, {"x": images, "label": labels})[0]
    assert np.max(np.abs(mu - expected_mu)) <= 1e-5
    assert np.max(np.abs(mu - z)) < 1e-2  # the tiny encoder inverts the decoder
    assert await cond_backend.server_ready()


async def test_dynamic_batching_merges_concurrent_requests(
    tmp_path: Path, triton_settings: Settings, triton_metric: Callable[[str, str], float]
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="tbatch", with_encoder=False)
    backend = TritonBackend(bundle, triton_settings, 1)  # a fresh model: counters start at 0
    await backend.load()
    z = np.random.default_rng(2).standard_normal((64, 4)).astype(np.float32)
    rows = await asyncio.gather(*(backend.decode(z[i : i + 1]) for i in range(64)))
    # Triton counts a request just after answering it: wait (bounded) for the counters
    items, batches = await counters_reaching(triton_metric, "tbatch__v1", 64)
    assert items == 64
    assert items / batches > 1, f"{items} items in {batches} batches"
    np.testing.assert_array_equal(np.concatenate(rows), await backend.decode(z))
    await backend.unload()


async def test_service_batcher_merges_requests_before_triton(
    tmp_path: Path, triton_settings: Settings, triton_metric: Callable[[str, str], float]
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="tmerge", with_encoder=False)
    metrics = ServiceMetrics()
    settings = triton_settings.model_copy(update={"triton_max_inflight": 2})
    backend = TritonBackend(bundle, settings, 1, metrics=metrics)
    await backend.load()
    n = 48
    z = np.random.default_rng(4).standard_normal((n, 4)).astype(np.float32)
    rows = await asyncio.gather(*(backend.decode(z[i : i + 1]) for i in range(n)))
    labels = {"model": "tmerge", "component": "decoder"}
    calls = metrics.registry.get_sample_value("latentserve_backend_batch_size_count", labels)
    merged = metrics.registry.get_sample_value("latentserve_backend_batch_size_sum", labels)
    assert merged == n and calls is not None
    assert calls <= n / 4, f"{n} requests went out as {calls} Triton calls"
    # Triton saw exactly the service's calls, each carrying several rows
    items, _ = await counters_reaching(triton_metric, "tmerge__v1", n)
    assert items == n
    assert triton_metric("nv_inference_request_success", "tmerge__v1") == calls
    np.testing.assert_array_equal(np.concatenate(rows), await backend.decode(z))
    await backend.unload()


async def test_inflight_limit_follows_tritons_statistics(
    tmp_path: Path, triton_settings: Settings, triton_metric: Callable[[str, str], float]
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="ttune", with_encoder=False)
    settings = triton_settings.model_copy(update={"triton_max_inflight": 4})
    backend = TritonBackend(bundle, settings, 1)
    await backend.load()
    tuner = backend.inflight_tuners["decoder"]
    await tuner.refresh()  # the baseline reading
    assert tuner.queue_share is None
    z = np.random.default_rng(5).standard_normal((48, 4)).astype(np.float32)
    await asyncio.gather(*(backend.decode(z[i : i + 1]) for i in range(48)))
    await counters_reaching(triton_metric, "ttune__v1", 48)
    await tuner.refresh()  # Triton's queue and compute times over the traffic above
    assert tuner.queue_share is not None and tuner.queue_share >= 0
    assert 1 <= tuner.limit <= 4
    off = TritonBackend(bundle, settings.model_copy(update={"triton_inflight_tuning": False}), 1)
    assert off.inflight_tuners == {}
    await backend.unload()


async def counters_reaching(
    metric: Callable[[str, str], float], model: str, items: int, within_s: float = 5.0
) -> tuple[float, float]:
    """(nv_inference_count, nv_inference_exec_count) once the item count reached `items`."""
    deadline = time.monotonic() + within_s
    while True:
        count = metric("nv_inference_count", model)
        runs = metric("nv_inference_exec_count", model)
        if (count >= items and runs >= 1) or time.monotonic() > deadline:
            return count, runs
        await asyncio.sleep(0.02)


async def test_bad_request_in_a_batch_fails_alone(cond_backend: TritonBackend) -> None:
    z = np.zeros((1, 4), np.float32)
    good = [cond_backend.decode(z, np.array([i % 3], np.int64)) for i in range(8)]
    bad = cond_backend.decode(z, np.array([7], np.int64))  # label out of range: Gather fails
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(r, np.ndarray) for r in results[:-1])
    assert isinstance(results[-1], BackendError)


async def test_two_versions_side_by_side_then_unload(
    tmp_path: Path, triton_settings: Settings, triton_server: TritonProcess
) -> None:
    bundles = [build_tiny_bundle(tmp_path / f"v{v}", name="tver", seed=v, with_encoder=False)
               for v in (1, 2)]  # fmt: skip
    backends = [TritonBackend(b, triton_settings, v) for v, b in zip((1, 2), bundles, strict=True)]
    await asyncio.gather(*(b.load() for b in backends))
    z = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    for backend, bundle in zip(backends, bundles, strict=True):
        expected = run_onnx(bundle.decoder_path, {"z": z})[0]
        np.testing.assert_allclose(await backend.decode(z), expected, atol=1e-6)
    await backends[0].unload()
    with pytest.raises(Unavailable):
        await backends[0].decode(z)
    client = shared_client(triton_server.grpc_url)
    assert not await client.is_model_ready("tver__v1")
    assert await client.is_model_ready("tver__v2")
    np.testing.assert_allclose(
        await backends[1].decode(z), run_onnx(bundles[1].decoder_path, {"z": z})[0], atol=1e-6
    )
    await backends[1].unload()


def broken_decoder() -> bytes:
    """Loads fine, fails at every run: Gather index 7 on a 4-wide latent."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["z", "idx"], ["x"], axis=1)],
        "broken",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        initializer=[helper.make_tensor("idx", TensorProto.INT64, [1], [7])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


async def test_broken_version_fails_only_its_requests(
    tmp_path: Path, triton_settings_for: Callable[..., Settings], triton_server: TritonProcess
) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", name="tbroken", with_encoder=False)
    good = TritonBackend(bundle, triton_settings_for(triton_server), 1)
    await good.load()
    config = triton_model_config(bundle, "decoder", "python", name="tbroken__v2")
    files = triton_load_files(bundle, "decoder", "python") | {"file:1/model.onnx": broken_decoder()}
    await shared_client(triton_server.grpc_url).load_model(
        "tbroken__v2", config=config, files=files
    )
    broken = TritonBackend(
        bundle, triton_settings_for(triton_server, triton_model_control="none"), 2
    )
    await broken.load()  # none mode: only checks that tbroken__v2 is ready
    z = np.zeros((2, 4), np.float32)
    results = await asyncio.gather(
        good.decode(z), broken.decode(z), good.decode(z), return_exceptions=True
    )
    assert isinstance(results[0], np.ndarray) and isinstance(results[2], np.ndarray)
    assert isinstance(results[1], BackendError)
    await broken.unload()  # none mode: leaves the model alone
    assert await shared_client(triton_server.grpc_url).is_model_ready("tbroken__v2")
    await shared_client(triton_server.grpc_url).unload_model("tbroken__v2")
    await good.unload()


async def test_none_mode_reports_missing_model_unavailable(
    cond_bundle: Bundle, triton_settings_for: Callable[..., Settings], triton_server: TritonProcess
) -> None:
    backend = TritonBackend(
        cond_bundle, triton_settings_for(triton_server, triton_model_control="none"), 99
    )
    with pytest.raises(Unavailable, match="tcond__v99"):
        await backend.load()
    assert not backend.ready


async def test_unreachable_server_is_unavailable_fast(
    cond_bundle: Bundle, triton_settings_for: Callable[..., Settings], triton_server: TritonProcess
) -> None:
    settings = triton_settings_for(triton_server, triton_url=f"127.0.0.1:{free_port()}")
    backend = TritonBackend(cond_bundle, settings, 1)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await backend.load()
    assert not await backend.server_ready()
    assert time.monotonic() - started < 5.0


async def test_shared_memory_outputs_match_and_are_cleaned_up(
    cond_bundle: Bundle, triton_settings_for: Callable[..., Settings], triton_server: TritonProcess
) -> None:
    settings = triton_settings_for(triton_server, triton_shared_memory=True)
    backend = TritonBackend(cond_bundle, settings, 2)
    await backend.load()
    rng = np.random.default_rng(4)
    z = rng.standard_normal((40, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40).astype(np.int64)
    images = await backend.decode(z, labels)
    np.testing.assert_array_equal(
        images, run_onnx(cond_bundle.decoder_path, {"z": z, "label": labels})[0]
    )
    assert cond_bundle.encoder_path is not None
    np.testing.assert_array_equal(
        await backend.encode(images, labels),
        run_onnx(cond_bundle.encoder_path, {"x": images, "label": labels})[0],
    )
    # 64 at once: more than the pool's 32 regions, the rest go over plain gRPC
    rows = await asyncio.gather(
        *(backend.decode(z[i % 40 : i % 40 + 1], labels[i % 40 : i % 40 + 1]) for i in range(64))
    )
    np.testing.assert_array_equal(np.concatenate(rows)[:40], images)
    status = await shared_client(triton_server.grpc_url).get_system_shared_memory_status()
    mine = [r for r in status.regions if "tcond_v2" in r]
    assert mine, status
    await backend.unload()
    status = await shared_client(triton_server.grpc_url).get_system_shared_memory_status()
    assert not [r for r in status.regions if "tcond_v2" in r]
    assert not list(Path("/dev/shm").glob(f"latentserve_{os.getpid()}_tcond_v2_*"))
