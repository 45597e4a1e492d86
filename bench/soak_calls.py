"""The soak's request mix: every RPC of latentserve.v1, good requests and deliberate mistakes.

Each `Call` builds one request with raw gRPC stubs (so mistakes the SDK would refuse reach the
server) and says which status codes it may end with: OK for good requests, INVALID_ARGUMENT or
NOT_FOUND for mistakes. Anything else is an unexpected status. Example::

    calls = soak_calls(models)                # models: the two soak bundles' facts
    call = random.Random(0).choice(calls)
    await call.run(stubs, rng)                # raises grpc.aio.AioRpcError on a non-OK status
"""

from __future__ import annotations

import io
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import numpy as np
from PIL import Image

from latentserve.core.tensors import to_tensor
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc

OK = frozenset({"OK"})
INVALID = frozenset({"INVALID_ARGUMENT"})
NOT_FOUND = frozenset({"NOT_FOUND"})
TIMEOUT_S = 30.0
"""Per-call deadline: a call that takes longer ends DEADLINE_EXCEEDED (unexpected)."""
METHODS = [pb.INTERPOLATION_METHOD_LERP, pb.INTERPOLATION_METHOD_SLERP,
           pb.INTERPOLATION_METHOD_VP_LERP]
SAMPLE_METHOD = "/latentserve.v1.GeneratorService/Sample"
SEED_POOL = 256
"""Seeds of Sample, Interpolate and Edit come from this many values: requests repeat, so the
response cache answers some of them and holds a working set, as under real traffic."""


def _seed(rng: random.Random) -> int:
    return rng.randrange(SEED_POOL)


@dataclass(frozen=True)
class SoakModel:
    """What the mix needs to know about one served model."""

    name: str
    latent_dim: int
    shape: tuple[int, int, int]
    num_classes: int  # 0: unconditional
    max_batch_size: int


class Stubs:
    """One client's channel: the generated stub plus a raw-bytes Sample method."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.api = pb_grpc.GeneratorServiceStub(self.channel)
        self.raw_sample = self.channel.unary_unary(
            SAMPLE_METHOD, request_serializer=None,
            response_deserializer=pb.GenerateResponse.FromString)

    async def close(self) -> None:
        await self.channel.close()


Run = Callable[[Stubs, random.Random], Awaitable[object]]


@dataclass(frozen=True)
class Call:
    """One kind of request: which RPC, good or a mistake, the statuses it may end with."""

    rpc: str
    name: str
    mistake: bool
    expected: frozenset[str]
    run: Run


def soak_calls(plain: SoakModel, cond: SoakModel) -> list[Call]:
    """The mix, good requests first; `plain` has an encoder and no condition, `cond` is
    class-conditional (3+ classes) with an encoder."""
    return [*_good_calls(plain, cond), *_mistakes(plain, cond)]


def _ref(model: SoakModel, **kw: object) -> pb.ModelRef:
    return pb.ModelRef(name=model.name, **kw)  # type: ignore[arg-type]


def _labels(model: SoakModel, rng: random.Random, n: int) -> list[int]:
    if not model.num_classes:
        return []
    return [rng.randrange(model.num_classes) for _ in range(n)]


def _latents(model: SoakModel, rng: random.Random, n: int) -> pb.Tensor:
    z = np.random.default_rng(rng.randrange(2**32)).standard_normal((n, model.latent_dim))
    return to_tensor(z.astype(np.float32))


def _images(model: SoakModel, rng: random.Random, n: int) -> np.ndarray:
    gen = np.random.default_rng(rng.randrange(2**32))
    return gen.uniform(0.05, 0.95, (n, *model.shape)).astype(np.float32)


def _pngs(model: SoakModel, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for image in (_images(model, rng, n) * 255).astype(np.uint8):
        buf = io.BytesIO()
        hwc = image.transpose(1, 2, 0)
        Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _outputs(rng: random.Random) -> pb.OutputFormat.ValueType:
    return rng.choice([pb.OUTPUT_FORMAT_FLOAT32, pb.OUTPUT_FORMAT_UINT8, pb.OUTPUT_FORMAT_PNG,
                       pb.OUTPUT_FORMAT_LATENTS_ONLY])


async def _stream(stubs: Stubs, request: pb.InterpolateRequest) -> int:
    frames = 0
    async for chunk in stubs.api.StreamInterpolate(request, timeout=TIMEOUT_S):
        frames += chunk.latents.shape[0] if chunk.latents.shape else 0
    return frames


def _good_calls(plain: SoakModel, cond: SoakModel) -> list[Call]:
    def sample(model: SoakModel) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            n = rng.randint(1, 2 * model.max_batch_size)  # one or more backend batches
            psi = rng.choice([None, 0.7, 1.0])
            return await s.api.Sample(pb.SampleRequest(
                model=_ref(model), n=n, seed=_seed(rng), truncation_psi=psi,
                class_labels=_labels(model, rng, rng.choice([1, n])), output=_outputs(rng)),
                timeout=TIMEOUT_S)
        return run

    def interpolate(model: SoakModel, streamed: bool) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            seeds = [_seed(rng) for _ in range(rng.randint(2, 4))]
            request = pb.InterpolateRequest(
                model=_ref(model), keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=seeds)),
                steps=rng.randint(2, 24), method=rng.choice(METHODS),
                class_labels=_labels(model, rng, 1), output=_outputs(rng))
            if streamed:
                return await _stream(s, request)
            return await s.api.Interpolate(request, timeout=TIMEOUT_S)
        return run

    def edit(model: SoakModel, by_vector: bool) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            request = pb.EditRequest(
                model=_ref(model), strengths=[-2.0, -1.0, 0.0, 1.0, 2.0][:rng.randint(1, 5)],
                class_labels=_labels(model, rng, 1), output=_outputs(rng))
            if rng.random() < 0.5:
                request.base.seeds.seeds.extend(_seed(rng) for _ in range(2))
            else:
                request.base.latents.CopyFrom(_latents(model, rng, 2))
            if by_vector:
                vector = np.random.default_rng(rng.randrange(2**32)).standard_normal(
                    model.latent_dim).astype(np.float32)
                request.direction_vector.CopyFrom(to_tensor(vector))
            else:
                request.direction_name = "d0"
                if rng.random() < 0.5:
                    request.conditional_on.append("pc0")
            return await s.api.Edit(request, timeout=TIMEOUT_S)
        return run

    def encode(model: SoakModel, png: bool) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            n = rng.randint(1, 8)
            request = pb.EncodeRequest(model=_ref(model), class_labels=_labels(model, rng, 1))
            if png:
                request.png.images.extend(_pngs(model, rng, n))
            else:
                request.images.CopyFrom(to_tensor(_images(model, rng, n)))
            return await s.api.Encode(request, timeout=TIMEOUT_S)
        return run

    def decode(model: SoakModel) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            n = rng.randint(1, 24)
            return await s.api.Decode(pb.DecodeRequest(
                model=_ref(model), latents=_latents(model, rng, n),
                class_labels=_labels(model, rng, 1), output=_outputs(rng)), timeout=TIMEOUT_S)
        return run

    def get_model(model: SoakModel) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            ref = rng.choice([_ref(model), _ref(model, alias="production"),
                              _ref(model, version=1)])
            return await s.api.GetModel(pb.GetModelRequest(model=ref), timeout=TIMEOUT_S)
        return run

    async def list_models(s: Stubs, rng: random.Random) -> object:
        return await s.api.ListModels(pb.ListModelsRequest(), timeout=TIMEOUT_S)

    calls = [Call("ListModels", "list", False, OK, list_models)]
    for m in (plain, cond):
        calls += [
            Call("Sample", f"sample {m.name}", False, OK, sample(m)),
            Call("Interpolate", f"interpolate {m.name}", False, OK, interpolate(m, False)),
            Call("StreamInterpolate", f"stream {m.name}", False, OK, interpolate(m, True)),
            Call("Edit", f"edit d0 {m.name}", False, OK, edit(m, False)),
            Call("Edit", f"edit vector {m.name}", False, OK, edit(m, True)),
            Call("Encode", f"encode tensor {m.name}", False, OK, encode(m, False)),
            Call("Encode", f"encode png {m.name}", False, OK, encode(m, True)),
            Call("Decode", f"decode {m.name}", False, OK, decode(m)),
            Call("GetModel", f"get {m.name}", False, OK, get_model(m)),
        ]
    return calls


def _mistakes(plain: SoakModel, cond: SoakModel) -> list[Call]:
    """Client mistakes: each must end INVALID_ARGUMENT or NOT_FOUND (never INTERNAL)."""
    def unary(rpc: str, build: Callable[[random.Random], object]) -> Run:
        async def run(s: Stubs, rng: random.Random) -> object:
            method: Callable[..., Awaitable[object]] = getattr(s.api, rpc)
            return await method(build(rng), timeout=TIMEOUT_S)
        return run

    async def stream_unknown_alias(s: Stubs, rng: random.Random) -> object:
        return await _stream(s, pb.InterpolateRequest(
            model=_ref(plain, alias="no-such-alias"),
            keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])), steps=4))

    async def undecodable(s: Stubs, rng: random.Random) -> object:
        return await s.raw_sample(b"\x0a\xff\xff\xff\x0f", timeout=TIMEOUT_S)

    nan = np.full((1, plain.latent_dim), np.nan, np.float32)
    return [
        Call("Sample", "n = 0", True, INVALID, unary(
            "Sample", lambda r: pb.SampleRequest(model=_ref(plain), n=0))),
        Call("Sample", "unknown model", True, NOT_FOUND, unary(
            "Sample", lambda r: pb.SampleRequest(model=pb.ModelRef(name="no-such-model"), n=1))),
        Call("Sample", "label out of range", True, INVALID, unary(
            "Sample", lambda r: pb.SampleRequest(model=_ref(cond), n=2,
                                                 class_labels=[cond.num_classes]))),
        Call("Sample", "missing labels", True, INVALID, unary(
            "Sample", lambda r: pb.SampleRequest(model=_ref(cond), n=2))),
        Call("Sample", "psi <= 0", True, INVALID, unary(
            "Sample", lambda r: pb.SampleRequest(model=_ref(plain), n=2, truncation_psi=-1.0))),
        Call("Sample", "undecodable bytes", True, INVALID, undecodable),
        Call("Interpolate", "one keyframe", True, INVALID, unary(
            "Interpolate", lambda r: pb.InterpolateRequest(
                model=_ref(plain), keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                steps=4))),
        Call("Interpolate", "too many frames", True, INVALID, unary(
            "Interpolate", lambda r: pb.InterpolateRequest(
                model=_ref(plain), keyframes=pb.LatentSource(seeds=pb.SeedList(seeds=[1, 2])),
                steps=1_000_000))),
        Call("StreamInterpolate", "unknown alias", True, NOT_FOUND, stream_unknown_alias),
        Call("Edit", "unknown direction", True, NOT_FOUND, unary(
            "Edit", lambda r: pb.EditRequest(
                model=_ref(plain), base=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                direction_name="no-such-direction", strengths=[1.0]))),
        Call("Edit", "no strengths", True, INVALID, unary(
            "Edit", lambda r: pb.EditRequest(
                model=_ref(plain), base=pb.LatentSource(seeds=pb.SeedList(seeds=[1])),
                direction_name="d0"))),
        Call("Edit", "overflowing psi", True, INVALID, unary(
            "Edit", lambda r: pb.EditRequest(
                model=_ref(plain), base=pb.LatentSource(seeds=pb.SeedList(
                    seeds=[1, 2], truncation_psi=3.4e38)),
                direction_name="d0", strengths=[1.0]))),
        Call("Encode", "not a PNG", True, INVALID, unary(
            "Encode", lambda r: pb.EncodeRequest(
                model=_ref(plain), png=pb.PngList(images=[b"GIF89a not a png"])))),
        Call("Encode", "wrong image shape", True, INVALID, unary(
            "Encode", lambda r: pb.EncodeRequest(
                model=_ref(plain), images=to_tensor(np.zeros((1, 1, 3, 3), np.float32))))),
        Call("Decode", "wrong latent size", True, INVALID, unary(
            "Decode", lambda r: pb.DecodeRequest(
                model=_ref(plain),
                latents=to_tensor(np.zeros((2, plain.latent_dim + 1), np.float32))))),
        Call("Decode", "NaN latents", True, INVALID, unary(
            "Decode", lambda r: pb.DecodeRequest(model=_ref(plain), latents=to_tensor(nan)))),
        Call("GetModel", "unknown version", True, NOT_FOUND, unary(
            "GetModel", lambda r: pb.GetModelRequest(model=_ref(plain, version=999)))),
    ]
