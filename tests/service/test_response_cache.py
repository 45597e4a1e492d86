"""The exact response cache against a real server (embedded backend, real MLflow registry).

Responses are compared as raw bytes off the wire; hits, misses, skips and evictions are read
from the server's Prometheus metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import Message

from latentserve.core.tensors import to_tensor
from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import metric_value, service_settings
from tests.fixtures.tiny import build_tiny_bundle

SERVICE = "/latentserve.v1.GeneratorService/"


class Raw:
    """Unary calls that return the response's bytes exactly as the server sent them."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)

    def __call__(self, rpc: str, request: Message) -> bytes:
        call: Callable[..., bytes] = self.channel.unary_unary(
            SERVICE + rpc, request_serializer=lambda m: m.SerializeToString())
        return call(request, timeout=30)

    def close(self) -> None:
        self.channel.close()


def server(registry_uri: str, tmp_path: Path, **overrides: Any) -> BackgroundServer:
    """A server (embedded backend) to start with `with`."""
    settings = service_settings(registry_uri, tmp_path / "cache", backend="embedded",
                                **overrides)
    return BackgroundServer(settings)


@pytest.fixture
def cached(registry_uri: str, tmp_path: Path) -> Iterator[tuple[BackgroundServer, Raw]]:
    with server(registry_uri, tmp_path) as bg:
        raw = Raw(bg.address)
        yield bg, raw
        raw.close()


def count(bg: BackgroundServer, what: str, **labels: str) -> float:
    return metric_value(bg, f"latentserve_response_cache_{what}", **labels)


def sample(seed: int = 1, n: int = 8, model: str = "tiny", **fields: Any) -> pb.SampleRequest:
    return pb.SampleRequest(model=pb.ModelRef(name=model), n=n, seed=seed, **fields)


def test_repeated_sample_is_a_bit_identical_hit(
        cached: tuple[BackgroundServer, Raw]) -> None:
    bg, raw = cached
    request = sample(seed=5, n=64, output=pb.OUTPUT_FORMAT_PNG)
    first = raw("Sample", request)
    assert count(bg, "misses_total", rpc="Sample", model="tiny") == 1
    assert count(bg, "hits_total") == 0
    again = raw("Sample", request)
    assert again == first
    assert count(bg, "hits_total", rpc="Sample", model="tiny") == 1
    assert count(bg, "misses_total") == 1
    assert count(bg, "entries") == 1
    assert count(bg, "bytes") >= len(first)
    response = pb.GenerateResponse.FromString(again)
    assert (response.model.name, response.model.version, response.model.alias) == \
        ("tiny", 1, "production")
    assert len(response.png) == 64
    # A hit is still counted as a served request of its model, with its items.
    assert metric_value(bg, "latentserve_requests_total", rpc="Sample", model="tiny",
                        code="OK") == 2
    assert metric_value(bg, "latentserve_request_items_sum", rpc="Sample") == 128


def test_every_rpc_hits_on_repeat(cached: tuple[BackgroundServer, Raw]) -> None:
    bg, raw = cached
    tiny = pb.ModelRef(name="tiny")
    latents = to_tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    images = to_tensor(np.linspace(0, 1, 2 * 64, dtype=np.float32).reshape(2, 1, 8, 8))
    requests: list[tuple[str, Message]] = [
        ("Interpolate", pb.InterpolateRequest(
            model=tiny, keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])), steps=5)),
        ("Edit", pb.EditRequest(model=tiny, base=pb.LatentSource(seeds=pb.SeedList(seeds=[3])),
                                direction_name="d0", strengths=[-1, 0, 1])),
        ("Decode", pb.DecodeRequest(model=tiny, latents=latents)),
        ("Encode", pb.EncodeRequest(model=tiny, images=images)),
    ]
    for rpc, request in requests:
        first = raw(rpc, request)
        assert raw(rpc, request) == first, rpc
        assert count(bg, "hits_total", rpc=rpc, model="tiny") == 1, rpc
        assert count(bg, "misses_total", rpc=rpc, model="tiny") == 1, rpc


def test_stream_and_catalogue_rpcs_are_not_cached(
        cached: tuple[BackgroundServer, Raw]) -> None:
    bg, raw = cached
    stream = pb_grpc.GeneratorServiceStub(raw.channel).StreamInterpolate
    request = pb.InterpolateRequest(model=pb.ModelRef(name="tiny"), steps=4,
                                    keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])))
    for _ in range(2):
        assert len(list(stream(request, timeout=30))) == 1
        raw("GetModel", pb.GetModelRequest(model=pb.ModelRef(name="tiny")))
        raw("ListModels", pb.ListModelsRequest())
    assert count(bg, "hits_total") == 0
    assert count(bg, "misses_total") == 0


def test_any_change_to_the_request_misses(cached: tuple[BackgroundServer, Raw]) -> None:
    bg, raw = cached
    variants = [
        sample(),
        sample(seed=2),
        sample(n=9),
        sample(truncation_psi=0.5),
        sample(output=pb.OUTPUT_FORMAT_UINT8),
        sample(model="tiny-cond", class_labels=[0]),
        sample(model="tiny-cond", class_labels=[1]),
    ]
    answers = {raw("Sample", r) for r in variants}
    assert len(answers) == len(variants)
    assert count(bg, "hits_total") == 0
    assert count(bg, "misses_total") == len(variants)
    # The default model and alias spelled out resolve to the same version: one entry.
    raw("Sample", sample(model=""))
    spelled = pb.SampleRequest(model=pb.ModelRef(name="tiny", alias="production"), n=8, seed=1)
    raw("Sample", spelled)
    raw("Sample", pb.SampleRequest(n=8, seed=1))   # no ModelRef at all
    assert count(bg, "hits_total", rpc="Sample", model="tiny") == 3
    # A pinned version is answered without an alias: it is not the alias's entry.
    pinned = pb.GenerateResponse.FromString(
        raw("Sample", pb.SampleRequest(model=pb.ModelRef(name="tiny", version=1), n=8, seed=1)))
    assert (pinned.model.version, pinned.model.alias) == (1, "")
    assert count(bg, "hits_total") == 3


def test_failed_requests_are_not_stored(cached: tuple[BackgroundServer, Raw]) -> None:
    bg, raw = cached
    bad_label = sample(model="tiny-cond", class_labels=[7])
    no_encoder = pb.EncodeRequest(
        model=pb.ModelRef(name="tiny-noenc"),
        images=to_tensor(np.zeros((1, 1, 8, 8), dtype=np.float32)))
    for rpc, request, code in [("Sample", bad_label, grpc.StatusCode.INVALID_ARGUMENT),
                               ("Encode", no_encoder, grpc.StatusCode.FAILED_PRECONDITION)]:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as failed:
                raw(rpc, request)
            assert failed.value.code() == code
    assert count(bg, "hits_total") == 0
    assert count(bg, "entries") == 0
    assert count(bg, "bytes") == 0


def test_byte_bound_evicts_least_recently_used(registry_uri: str, tmp_path: Path) -> None:
    capacity = 32 * 1024   # entries of ~2.5 KB each (8 float32 8×8 images), at most 4 KB
    with server(registry_uri, tmp_path, response_cache_bytes=capacity) as bg:
        raw = Raw(bg.address)
        first = raw("Sample", sample(seed=0))
        for seed in range(1, 40):
            raw("Sample", sample(seed=seed))
            assert count(bg, "bytes") <= capacity
        evicted = count(bg, "evictions_total", model="tiny", reason="capacity")
        assert evicted > 0
        assert count(bg, "entries") == 40 - evicted
        assert raw("Sample", sample(seed=39)) is not None
        assert count(bg, "hits_total") == 1
        assert raw("Sample", sample(seed=0)) == first   # evicted: recomputed, same bytes
        assert count(bg, "hits_total") == 1
        assert count(bg, "misses_total") == 41
        # A response over an eighth of the capacity is computed but never stored.
        big = sample(seed=1, n=64)
        raw("Sample", big)
        raw("Sample", big)
        assert count(bg, "skips_total", rpc="Sample", reason="response_size") == 2
        assert count(bg, "hits_total") == 1
        raw.close()


def test_off_with_zero_bytes(registry_uri: str, tmp_path: Path,
                             cached: tuple[BackgroundServer, Raw]) -> None:
    on, on_raw = cached
    with server(registry_uri, tmp_path / "off", response_cache_bytes=0) as bg:
        raw = Raw(bg.address)
        request = sample(seed=11, n=16)
        answers = {raw("Sample", request) for _ in range(3)}
        assert len(answers) == 1
        for what in ("hits_total", "misses_total", "skips_total", "entries", "bytes"):
            assert count(bg, what) == 0, what
        # What a cache hit sends is what a server without a cache computes.
        on_raw("Sample", request)
        assert on_raw("Sample", request) in answers
        assert count(on, "hits_total") == 1
        raw.close()


def test_requests_over_the_key_bound_skip_the_cache(registry_uri: str, tmp_path: Path) -> None:
    with server(registry_uri, tmp_path, response_cache_max_key_bytes=200) as bg:
        raw = Raw(bg.address)
        small = pb.DecodeRequest(model=pb.ModelRef(name="tiny"),
                                 latents=to_tensor(np.ones((2, 4), dtype=np.float32)))
        large = pb.DecodeRequest(model=pb.ModelRef(name="tiny"),
                                 latents=to_tensor(np.ones((32, 4), dtype=np.float32)))
        assert large.ByteSize() > 200 > small.ByteSize()
        assert raw("Decode", large) == raw("Decode", large)
        assert count(bg, "skips_total", rpc="Decode", reason="request_size") == 2
        assert count(bg, "misses_total") == 0
        raw("Decode", small)
        raw("Decode", small)
        assert count(bg, "hits_total", rpc="Decode") == 1
        raw.close()


def test_a_moved_alias_never_gets_the_old_versions_bytes(empty_registry_uri: str,
                                                         tmp_path: Path) -> None:
    for version, seed in ((1, 0), (2, 1)):   # the versions decode the same latent differently
        bundle = build_tiny_bundle(tmp_path / f"v{version}", name="swap", seed=seed)
        assert register_bundle(empty_registry_uri, bundle.root, "swap") == version
    registry = RegistryClient(empty_registry_uri)
    registry.set_alias("swap", "production", 1)
    with server(empty_registry_uri, tmp_path, default_model="swap") as bg:
        raw = Raw(bg.address)
        request = sample(model="swap")
        old = raw("Sample", request)
        assert raw("Sample", request) == old
        assert count(bg, "hits_total") == 1
        assert count(bg, "entries") == 1
        registry.set_alias("swap", "production", 2)
        assert bg.server is not None
        bg.call(bg.server.manager.refresh())         # the poll that notices the move
        # v1 was retired: its entries are gone and their memory returned.
        assert count(bg, "evictions_total", model="swap", reason="unloaded") == 1
        assert count(bg, "entries") == 0
        assert count(bg, "bytes") == 0
        new = raw("Sample", request)
        assert new != old
        parsed = pb.GenerateResponse.FromString(new)
        assert (parsed.model.version, parsed.model.alias) == (2, "production")
        assert parsed.images.data != pb.GenerateResponse.FromString(old).images.data
        assert count(bg, "hits_total") == 1
        assert raw("Sample", request) == new
        assert count(bg, "hits_total") == 2
        raw.close()
