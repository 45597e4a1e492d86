"""Attack regressions, memory (second pass, items 1, 7, 12 and 18): what a refused request leaves
behind, what a cached response really costs, how much log a request can write, and what alias
moves with the response cache on leave behind.

Memory is measured in-process: objects kept alive only by reference cycles (found by the cyclic
collector with DEBUG_SAVEALL) and tracemalloc deltas; nothing is timed.
"""

from __future__ import annotations

import gc
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import structlog

from latentserve.core.tensors import to_tensor
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.logs import MAX_FIELD_CHARS, configure_logging, get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import ServedVersion
from latentserve.service.response_cache import CacheKey, ResponseCache
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.attack import packed_zeros, raw_call
from tests.fixtures.models import eventually, versioned_registry
from tests.fixtures.service import service_settings


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


# ------------------------------------------------------------------ item 7: cache accounting
def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(("rows", "dim", "image"), [(1, 4, None), (1, 4, (1, 8, 8)),
                                                    (4, 16, (1, 8, 8))],
                         ids=["latents only", "one small image", "four small images"])
def test_cache_counts_the_memory_small_entries_really_hold(
        rows: int, dim: int, image: tuple[int, ...] | None) -> None:
    # Charging serialized size + 256 B let the default 256 MiB hold ~1.1 GiB of small entries.
    rng = np.random.default_rng(0)
    response = pb.GenerateResponse(latents=to_tensor(rng.random((rows, dim), np.float32)))
    if image is not None:
        response.images.CopyFrom(to_tensor(rng.random((rows, *image), np.float32)))
    wire = response.SerializeToString()
    cache = ResponseCache(1 << 40, 1 << 20, ServiceMetrics())
    entries = 20_000
    gc.collect()
    before = _rss_bytes()
    for i in range(entries):
        key = CacheKey("Sample", "tiny", 1, "", "production", 100, i.to_bytes(16, "little"))
        cache.put(key, pb.GenerateResponse.FromString(wire), rows)
    gc.collect()
    real = (_rss_bytes() - before) / entries
    charged = cache.charged / entries
    assert charged >= 0.9 * real, f"charged {charged:.0f} B per entry, holds {real:.0f} B"
    assert charged <= 3 * real + 4096  # and not wildly more


# ------------------------------------------------------------------ item 12: long names in logs
def test_log_lines_cut_request_names(attack_stub: pb_grpc.GeneratorServiceStub) -> None:
    logged = io.StringIO()
    previous = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=logged))
    name = "m" * (2 << 20)  # a 2 MB model name wrote 2 MB of log per request
    try:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as info:
                attack_stub.Sample(pb.SampleRequest(n=1, model=pb.ModelRef(name=name)),
                                   timeout=30)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        structlog.configure(logger_factory=previous)
    text = logged.getvalue()
    assert "rpc" in text and len(text.encode()) < 3 * 8192, len(text)


def test_every_log_field_is_cut() -> None:
    previous = structlog.get_config()
    logged = io.StringIO()
    configure_logging("INFO", "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=logged))
    try:
        get_logger("attack").warning("model load failed", model="m" * (4 << 20),
                                     error="e" * (4 << 20))
        line = logged.getvalue()
    finally:
        structlog.configure(**previous)  # the session's servers keep logging as before
    assert len(line.encode()) < 4 * MAX_FIELD_CHARS
    fields = json.loads(line)
    assert fields["model"].startswith("m" * MAX_FIELD_CHARS)
    assert fields["model"].endswith(f"(cut, {4 << 20} chars)")


# ------------------------------------------------------------------ item 18: alias moves
def test_alias_moves_with_the_cache_on_keep_memory_flat(empty_registry_uri: str,
                                                        tmp_path: Path) -> None:
    uri = versioned_registry(empty_registry_uri, tmp_path / "bundles", "m", versions=2)
    settings = service_settings(uri, tmp_path / "cache", default_model="m",
                                response_cache_bytes=8 << 20)
    registry = RegistryClient(uri)
    rss: list[int] = []
    with BackgroundServer(settings) as bg, grpc.insecure_channel(bg.address) as channel:
        assert bg.server is not None
        stub = pb_grpc.GeneratorServiceStub(channel)
        for move in range(12):
            for seed in range(40):  # fills the cache for the serving version
                stub.Sample(pb.SampleRequest(n=4, seed=seed), timeout=30)
            registry.set_alias("m", "production", 2 if move % 2 == 0 else 1)
            bg.call(bg.server.manager.refresh())
            # the old version unloads once drained, then nothing holds it
            bg.call(eventually(lambda: _versions_alive(tmp_path) <= 2))
            rss.append(_rss_bytes())
            cache = bg.server.response_cache
            loaded = set(bg.server.manager.loaded_versions())
            assert all((k.name, k.version) in loaded for k in cache._entries)
            assert cache.charged <= cache.capacity_bytes
    assert max(rss[2:]) < 1.1 * rss[2], [r >> 20 for r in rss]


def _versions_alive(root: Path) -> int:
    """ServedVersions of bundles under `root` still alive (other tests' servers aside)."""
    gc.collect()
    return sum(isinstance(o, ServedVersion) and o.bundle.root.is_relative_to(root)
               for o in gc.get_objects())
