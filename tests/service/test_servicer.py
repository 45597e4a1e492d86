"""GeneratorServicer's handlers called directly (no server): what each RPC answers, what it
records on its Outcome, and the response cache answering repeats of the cacheable RPCs."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.core.tensors import from_tensor, to_tensor
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.backends.factory import backend_factory
from latentserve.service.grpc_errors import Outcome
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.manager import ModelManager
from latentserve.service.response_cache import ResponseCache
from latentserve.service.servicer import GeneratorServicer
from latentserve.v1 import generator_pb2 as pb
from tests.fixtures.service import service_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the manager lives on the fixture's loop


class Handlers:
    """The servicer's handlers without their RPC wrapper: `call("Sample", request)`."""

    def __init__(self, servicer: GeneratorServicer, metrics: ServiceMetrics) -> None:
        self.servicer, self.metrics = servicer, metrics

    def handler(self, rpc: str) -> Callable[..., Any]:
        unwrapped: Callable[..., Any] = inspect.unwrap(getattr(GeneratorServicer, rpc))
        return unwrapped

    async def call(self, rpc: str, request: Any) -> tuple[Any, Outcome]:
        outcome = Outcome()
        return await self.handler(rpc)(self.servicer, request, None, outcome), outcome

    def hits(self, rpc: str, model: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "latentserve_response_cache_hits_total", {"rpc": rpc, "model": model})
        return value or 0.0


@pytest.fixture(scope="module")
async def handlers(registry_uri: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[Handlers]:
    settings = service_settings(registry_uri, Path(tmp_path_factory.mktemp("cache")),
                                max_items=64)
    metrics = ServiceMetrics()
    cache = ResponseCache(8 << 20, 1 << 20, metrics)
    manager = ModelManager(settings, RegistryClient(registry_uri),
                           backend_factory(settings, metrics), metrics,
                           on_retire=cache.drop_version)
    await manager.start()
    await manager.wait_ready(60)
    yield Handlers(GeneratorServicer(settings, manager, metrics, cache), metrics)
    await manager.close()


async def test_sample_records_its_outcome_and_repeats_come_from_the_cache(
        handlers: Handlers) -> None:
    request = pb.SampleRequest(seed=11, n=3, output=pb.OUTPUT_FORMAT_UINT8)
    first, outcome = await handlers.call("Sample", request)
    assert (outcome.model, outcome.version, outcome.items) == ("tiny", 1, 3)
    assert from_tensor(first.images).shape == (3, 1, 8, 8)
    assert first.model.alias == "production"
    hits = handlers.hits("Sample", "tiny")
    again, repeat = await handlers.call("Sample", request)
    assert again is first and handlers.hits("Sample", "tiny") == hits + 1
    assert (repeat.model, repeat.version, repeat.items) == ("tiny", 1, 3)
    other, _ = await handlers.call("Sample", pb.SampleRequest(seed=12, n=3))
    assert other is not first


async def test_decode_checks_latents_against_the_leased_model(handlers: Handlers) -> None:
    z = np.zeros((2, 4), np.float32)
    reply, outcome = await handlers.call("Decode", pb.DecodeRequest(latents=to_tensor(z)))
    assert outcome.items == 2 and from_tensor(reply.images).shape == (2, 1, 8, 8)
    with pytest.raises(InvalidArgument, match=r"mapping\.w_dim 6"):
        await handlers.call("Decode", pb.DecodeRequest(latents=to_tensor(z),
                                                       model=pb.ModelRef(name="tiny-w")))


async def test_edit_produces_one_row_per_base_and_strength(handlers: Handlers) -> None:
    request = pb.EditRequest(base=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])),
                             direction_name="d0", strengths=[-1, 0, 1],
                             output=pb.OUTPUT_FORMAT_LATENTS_ONLY)
    reply, outcome = await handlers.call("Edit", request)
    assert outcome.items == 6 and from_tensor(reply.latents).shape == (6, 4)
    assert not reply.HasField("images")
    again, _ = await handlers.call("Edit", request)
    assert again is reply


async def test_interpolate_and_its_stream_give_the_same_frames(handlers: Handlers) -> None:
    request = pb.InterpolateRequest(keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])),
                                    steps=20)
    whole, outcome = await handlers.call("Interpolate", request)
    assert outcome.items == 20
    outcome = Outcome()
    chunks = [c async for c in handlers.handler("StreamInterpolate")(
        handlers.servicer, request, None, outcome)]
    assert [c.offset for c in chunks] == [0, 16]  # tiny's max_batch_size is 16
    streamed = np.concatenate([from_tensor(c.latents) for c in chunks])
    np.testing.assert_array_equal(streamed, from_tensor(whole.latents))


async def test_encode_needs_an_encoder_and_is_cached(handlers: Handlers) -> None:
    images = np.full((1, 1, 8, 8), 0.5, np.float32)
    request = pb.EncodeRequest(images=to_tensor(images))
    reply, outcome = await handlers.call("Encode", request)
    assert outcome.items == 1 and from_tensor(reply.latents).shape == (1, 4)
    again, _ = await handlers.call("Encode", request)
    assert again is reply
    with pytest.raises(FailedPrecondition, match="no encoder"):
        await handlers.call("Encode", pb.EncodeRequest(images=to_tensor(images),
                                                       model=pb.ModelRef(name="tiny-noenc")))


async def test_catalogue_rpcs(handlers: Handlers) -> None:
    listed, _ = await handlers.call("ListModels", pb.ListModelsRequest())
    assert {m.name for m in listed.models} == {"tiny", "tiny-cond", "tiny-noenc", "tiny-w"}
    info, outcome = await handlers.call("GetModel", pb.GetModelRequest(
        model=pb.ModelRef(name="tiny-cond")))
    assert (outcome.model, outcome.version) == ("tiny-cond", 1)
    assert list(info.aliases) == ["production"] and info.num_classes == 3
