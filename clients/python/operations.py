"""The SDK's operations, written once: parameters, argument checks, request and plan.

`Client` and `AsyncClient` have each of them as a method (blocking or awaited; see `api`) with
the same parameters and docstring; an operation only checks its arguments, builds the request
and returns the plan (`calls`) that performs it. Adding an RPC: one function here and one line
in `api.BaseClient`. Example (what `client.sample(...)` does)::

    plan = sample(core, "digits-cvae", n=8, seed=1, class_labels=[3])   # errors here
    result = calls.run(plan, perform)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar

import numpy.typing as npt

from latentserve.v1 import generator_pb2 as pb

from . import messages
from .base import ClientCore
from .calls import ChunkStream, Plan, describe, generate, mapped, unary
from .messages import ImagesArg, Labels, MethodArg, OutputArg
from .refs import ModelArg
from .results import (
    EncodeResult,
    GenerateResult,
    ModelInfo,
    ModelSummary,
    encode_result_from_proto,
    model_summary_from_proto,
)

P = ParamSpec("P")
T = TypeVar("T")


def parameters_of(shared: Callable[P, Any]) -> Callable[[Callable[..., T]], Callable[P, T]]:
    """Give the decorated operation `shared`'s parameters (for mypy and inspect); it must
    forward its arguments to `shared`, which checks them."""

    def apply(op: Callable[..., T]) -> Callable[P, T]:
        sig = inspect.signature(shared)
        op.__signature__ = sig.replace(  # type: ignore[attr-defined]
            return_annotation=inspect.signature(op).return_annotation
        )
        return op

    return apply


def sample(
    core: ClientCore,
    model: ModelArg,
    *,
    n: int = 1,
    seed: int = 0,
    truncation_psi: float | None = None,
    class_labels: Labels = None,
    output: OutputArg = "float32",
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> Plan[GenerateResult]:
    """Draw `n` seeded latents (item i from SeedSequence([seed, i])) and decode them.

    Example::

        client.sample("digits-cvae", n=10, seed=0, class_labels=list(range(10)))
    """
    req = messages.sample_request(
        core.ref(model, version, alias),
        n=n,
        seed=seed,
        truncation_psi=truncation_psi,
        class_labels_=class_labels,
        output=output,
    )
    return generate(core, "Sample", req, core.config.call_timeout(timeout_s))


def _interpolate(
    core: ClientCore,
    model: ModelArg,
    *,
    seeds: Sequence[int] | None = None,
    latents: npt.ArrayLike | None = None,
    steps: int = 8,
    method: MethodArg = None,
    truncation_psi: float | None = None,
    class_labels: Labels = None,
    output: OutputArg = "float32",
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> tuple[ClientCore, pb.InterpolateRequest, float]:
    """The parameters of `interpolate` and `stream_interpolate`, checked."""
    req = messages.interpolate_request(
        core.ref(model, version, alias),
        seeds=seeds,
        latents=latents,
        steps=steps,
        method=method,
        truncation_psi=truncation_psi,
        class_labels_=class_labels,
        output=output,
    )
    return core, req, core.config.call_timeout(timeout_s)


@parameters_of(_interpolate)
def interpolate(*args: Any, **kwargs: Any) -> Plan[GenerateResult]:
    """Decode a path through keyframes (`seeds=` or `latents=` [k, N]).

    Frame count: `steps` frames per segment, both keyframes included, and the frame shared by
    two segments counted once, so k keyframes give (k - 1) * (steps - 1) + 1 rows (3 seeds,
    `steps=8` → 15 frames). The result's `grid()` is one row (as the CLI's strip).

    Example::

        path = client.interpolate("shapes3d", seeds=[1, 2, 3], steps=8, class_labels=[2])
        len(path), path.grid().size        # 15, one row of 15 frames
        path.save_animation("walk.gif")     # needs Pillow ([images] extra)
    """
    core, req, timeout_s = _interpolate(*args, **kwargs)
    return mapped(generate(core, "Interpolate", req, timeout_s),
                  lambda result: replace(result, columns=len(result)))


@parameters_of(_interpolate)
def stream_interpolate(*args: Any, **kwargs: Any) -> ChunkStream:
    """Like `interpolate`, yielding chunks in order (`chunk.offset` = first row); the same
    frame count, (k - 1) * (steps - 1) + 1 rows in all.

    Example::

        for chunk in client.stream_interpolate("shapes3d", seeds=[1, 2], steps=200,
                                                 class_labels=[1]):
            frames[chunk.offset:chunk.offset + len(chunk)] = chunk.images
    """
    core, req, timeout_s = _interpolate(*args, **kwargs)
    return ChunkStream(core, "StreamInterpolate", req, timeout_s)


def edit(
    core: ClientCore,
    model: ModelArg,
    *,
    direction: str | npt.ArrayLike,
    strengths: Sequence[float] | npt.ArrayLike,
    seeds: Sequence[int] | None = None,
    latents: npt.ArrayLike | None = None,
    conditional_on: Sequence[str] = (),
    truncation_psi: float | None = None,
    class_labels: Labels = None,
    output: OutputArg = "float32",
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> Plan[GenerateResult]:
    """Move each base latent along `direction` (a name or a vector [D] of the editing space)
    by each strength;
    rows are base-major (row = b * len(strengths) + s), and `grid()` has one row per base,
    one column per strength.

    Example::

        sweep = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                            strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_y"],
                            class_labels=[0, 2])
    """
    req = messages.edit_request(
        core.ref(model, version, alias),
        seeds=seeds,
        latents=latents,
        direction=direction,
        strengths=strengths,
        conditional_on=conditional_on,
        truncation_psi=truncation_psi,
        class_labels_=class_labels,
        output=output,
    )
    columns = len(req.strengths)
    return mapped(generate(core, "Edit", req, core.config.call_timeout(timeout_s)),
                  lambda result: replace(result, columns=columns))


def encode(
    core: ClientCore,
    model: ModelArg,
    images: ImagesArg,
    *,
    class_labels: Labels = None,
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> Plan[EncodeResult]:
    """Map images (float [n, C, H, W] in the output range, uint8 [n, C, H, W], PNG bytes
    or PIL images) to posterior-mean latents of the model's editing space (W codes for
    two-stage generators). `class_labels` is required when `ModelInfo.encoder_conditional`.

    Example::

        z = client.encode("sprites-vae", out.images, class_labels=[0]).latents
    """
    ref = core.ref(model, version, alias)
    req = messages.encode_request(ref, images=images, class_labels_=class_labels)
    plan = unary(core, "Encode", req, core.config.call_timeout(timeout_s))
    return mapped(plan, encode_result_from_proto)


def decode(
    core: ClientCore,
    model: ModelArg,
    latents: npt.ArrayLike,
    *,
    class_labels: Labels = None,
    output: OutputArg = "float32",
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> Plan[GenerateResult]:
    """Decode caller latents [n, D] of the model's editing space (D = `ModelInfo.editing_dim`:
    `w_dim` for two-stage generators, else `latent_dim`).

    Example::

        again = client.decode("sprites-vae", z, class_labels=[0])
    """
    ref = core.ref(model, version, alias)
    req = messages.decode_request(ref, latents=latents, class_labels_=class_labels, output=output)
    return generate(core, "Decode", req, core.config.call_timeout(timeout_s))


def list_models(core: ClientCore, *, timeout_s: float | None = None) -> Plan[list[ModelSummary]]:
    """The generators the service can serve, with versions and aliases.

    Example::

        [m.name for m in client.list_models()]     # ['digits-cvae', 'shapes3d', 'sprites-vae']
    """
    plan = unary(core, "ListModels", pb.ListModelsRequest(), core.config.call_timeout(timeout_s))
    return mapped(plan, lambda resp: [model_summary_from_proto(m) for m in resp.models])


def get_model(
    core: ClientCore,
    model: ModelArg,
    *,
    version: int | None = None,
    alias: str | None = None,
    timeout_s: float | None = None,
) -> Plan[ModelInfo]:
    """Describe one generator version: dims, output range, classes, directions, metrics.

    Example::

        info = client.get_model("digits-cvae")
        info.num_classes, [d.name for d in info.directions]
    """
    return describe(core, core.ref(model, version, alias), core.config.call_timeout(timeout_s))
