"""Request validation: protobuf requests → checked plain values, or InvalidArgument naming fields.

Two layers: checks that need no model (counts, enums, finite numbers) run before resolution;
checks against the resolved bundle's spec (latent dim, labels, directions) run after. Nothing
here does latent math or talks to a backend. Example::

    limits = Limits.from_settings(settings)
    n = check_count(request.n, "n", limits.max_items)
    labels = class_labels(request.class_labels, spec, rows=n, field="class_labels")
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, I64
from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.core.tensors import TensorError, from_tensor
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service.images import from_png
from latentserve.service.settings import Settings
from latentserve.v1 import generator_pb2 as pb

Method = Literal["lerp", "slerp", "vp_lerp"]
Output = Literal["float32", "uint8", "png", "latents"]

_METHODS: dict[int, Method] = {
    pb.INTERPOLATION_METHOD_LERP: "lerp",
    pb.INTERPOLATION_METHOD_SLERP: "slerp",
    pb.INTERPOLATION_METHOD_VP_LERP: "vp_lerp",
}
_OUTPUTS: dict[int, Output] = {
    pb.OUTPUT_FORMAT_UNSPECIFIED: "float32",
    pb.OUTPUT_FORMAT_FLOAT32: "float32",
    pb.OUTPUT_FORMAT_UINT8: "uint8",
    pb.OUTPUT_FORMAT_PNG: "png",
    pb.OUTPUT_FORMAT_LATENTS_ONLY: "latents",
}


@dataclass(frozen=True)
class Limits:
    """The request limits in force (from settings)."""

    max_items: int
    max_frames: int
    max_message_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_items, settings.max_frames, settings.max_message_bytes)


@dataclass(frozen=True)
class KeyframeSeeds:
    """Latents given as seeds: seed s ≡ item 0 of Sample(seed=s), optionally truncated."""

    seeds: list[int]
    psi: float | None
    cutoff: int | None = None
    """W+: ψ on the first `cutoff` layers only (None: all)."""


@dataclass(frozen=True)
class PathRequest:
    """A checked InterpolateRequest (labels aside): keyframes, steps between them, frame count."""

    keyframes: F32 | KeyframeSeeds
    steps: int
    frames: int
    method: Method
    output: Output


@dataclass(frozen=True)
class DirectionChoice:
    """An Edit's direction: a bundle direction by name, or a caller vector (non-zero, raw)."""

    name: str
    """The bundle direction; "" when `vector` is given."""
    vector: F32 | None
    conditional_on: list[str]


MAX_TENSOR_RANK = 8
"""Most dimensions a request tensor may declare (every API tensor has at most 4)."""
_REPEATED_FIELDS = ("class_labels", "strengths", "conditional_on", "png.images",
                    "base.seeds.seeds", "keyframes.seeds.seeds", "row_seeds", "col_seeds")
"""Every repeated field of a request whose length the limits bound."""
_TENSOR_FIELDS = ("latents", "images", "direction_vector", "base.latents", "keyframes.latents")


def _field(message: Any, path: str) -> Any:
    """The value at a dotted field path, or None when the message has no such field."""
    for part in path.split("."):
        if part not in message.DESCRIPTOR.fields_by_name:
            return None
        message = getattr(message, part)
    return message


@cache
def _size_paths(descriptor: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The repeated-field and tensor paths a message type has (worked out once per type)."""

    def exists(path: str) -> bool:
        current = descriptor
        for part in path.split("."):
            if current is None or part not in current.fields_by_name:
                return False
            current = current.fields_by_name[part].message_type
        return True

    return (tuple(p for p in _REPEATED_FIELDS if exists(p)),
            tuple(p for p in _TENSOR_FIELDS if exists(p)))


def check_sizes(request: Any, limit: int) -> None:
    """Bound every repeated field (and tensor rank) of `request` before any per-element work.

    Runs first in every handler: `len()` of a repeated field costs nothing, while converting
    40 million labels to an array would hold the event loop for seconds. `limit` is the most
    entries any of these fields may need (max_items, or max_frames for a path).
    """
    repeated, tensors = _size_paths(request.DESCRIPTOR)
    for path in repeated:
        values = _field(request, path)
        if values is not None and len(values) > limit:
            raise InvalidArgument(
                f"{path} holds {len(values)} entries, over the limit of {limit}", field=path
            )
    for path in tensors:
        message = _field(request, path)
        if message is not None and len(message.shape) > MAX_TENSOR_RANK:
            raise InvalidArgument(
                f"{path}.shape has {len(message.shape)} dimensions, at most "
                f"{MAX_TENSOR_RANK} are accepted", field=f"{path}.shape")


def model_ref(ref: pb.ModelRef) -> dict[str, Any]:
    """ModelRef → keyword arguments of ModelManager.lease/resolve."""
    which = ref.WhichOneof("selector")
    if which == "version":
        if ref.version <= 0:
            raise InvalidArgument(
                f"model.version must be ≥ 1, got {ref.version}", field="model.version"
            )
        return {"name": ref.name, "version": ref.version}
    if which == "alias":
        if not ref.alias:
            raise InvalidArgument("model.alias must not be empty when set", field="model.alias")
        return {"name": ref.name, "alias": ref.alias}
    return {"name": ref.name}


def check_count(value: int, field: str, limit: int, *, low: int = 1) -> int:
    """An integer count within [low, limit]."""
    if not low <= value <= limit:
        raise InvalidArgument(
            f"{field} must be between {low} and {limit}, got {value}", field=field
        )
    return value


def truncation_psi(message: Any, field: str) -> float | None:
    """An optional ψ: unset → None (no truncation); must be finite and > 0."""
    if not message.HasField("truncation_psi"):
        return None
    psi = float(message.truncation_psi)
    if not math.isfinite(psi) or psi <= 0:
        raise InvalidArgument(f"{field} must be a finite number > 0, got {psi}", field=field)
    return psi


def w_plus_only(spec: BundleSpec, field: str) -> None:
    """FAILED_PRECONDITION naming `field` unless the model has W+ layers."""
    if not spec.num_ws:
        raise FailedPrecondition(f"{field}: {spec.name} has no W+ layers (its decoder takes one "
                                 "latent per item); leave it unset")


def truncation_cutoff(message: Any, spec: BundleSpec, field: str) -> int | None:
    """An optional cutoff k (ψ on layers < k): W+ generators only, 0 ≤ k ≤ num_ws."""
    if not message.HasField("truncation_cutoff"):
        return None
    w_plus_only(spec, field)
    k = int(message.truncation_cutoff)
    if k > spec.num_ws:
        raise InvalidArgument(f"{field} must be at most num_ws {spec.num_ws}, got {k}",
                              field=field)
    return k


def method(value: int, spec: BundleSpec) -> Method:
    """InterpolationMethod enum → name; UNSPECIFIED is slerp in Z, lerp in W (StyleGAN's)."""
    if value == pb.INTERPOLATION_METHOD_UNSPECIFIED:
        return "lerp" if spec.editing_space == "w" else "slerp"
    try:
        return _METHODS[value]
    except KeyError:
        raise InvalidArgument(
            f"method {value} is not a known InterpolationMethod (LERP, SLERP, VP_LERP)",
            field="method",
        ) from None


def output_format(value: int) -> Output:
    """OutputFormat enum → name."""
    try:
        return _OUTPUTS[value]
    except KeyError:
        raise InvalidArgument(
            f"output {value} is not a known OutputFormat (FLOAT32, UINT8, PNG, LATENTS_ONLY)",
            field="output",
        ) from None


def strengths(values: Sequence[float]) -> F32:
    """Edit strengths: at least one, all finite."""
    if not values:
        raise InvalidArgument("strengths must hold at least one value", field="strengths")
    arr = np.asarray(values, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidArgument("strengths must be finite numbers", field="strengths")
    return arr


def tensor(message: pb.Tensor, field: str, *, space: BundleSpec | None = None,
           **checks: Any) -> npt.NDArray[Any]:
    """from_tensor with TensorError turned into InvalidArgument on the same field; with `space`,
    a wrong shape also says which editing space (and size) the latents belong to."""
    try:
        return from_tensor(message, field=field, **checks)
    except TensorError as exc:
        text = str(exc)
        if space is not None and exc.field.endswith(".shape"):
            text += f" ({editing_space_note(space)})"
        raise InvalidArgument(text, field=exc.field) from None


def editing_space_note(spec: BundleSpec) -> str:
    """'latents are in Z, latent_dim 4' or '… in W, mapping.w_dim 6' for error messages."""
    if spec.num_ws:
        return (f"{spec.name}'s latents are in W+, [num_ws, w_dim] = "
                f"{list(spec.editing_shape)} or {spec.row_dim} flat values; seeds draw z of "
                f"latent_dim {spec.latent_dim}")
    if spec.mapping is not None:
        return (f"{spec.name}'s latents are in W, mapping.w_dim {spec.editing_dim}; "
                f"seeds draw z of latent_dim {spec.latent_dim}")
    if spec.latent_shape:
        return (f"{spec.name}'s latents are in Z, latent_shape {spec.latent_shape} or "
                f"{spec.latent_dim} flat values")
    return f"{spec.name}'s latents are in Z, latent_dim {spec.latent_dim}"


def latents(message: pb.Tensor, field: str, spec: BundleSpec, limit: int) -> F32:
    """Caller latents of the editing space as flat rows [n, row_dim], 1 ≤ n ≤ limit, finite.

    Taken flat [n, row_dim] or shaped [n, *editing_shape] ([n, 4, 16, 16] for a spatial Z,
    [n, num_ws, w_dim] for W+); the shape is checked against the byte count before any
    value is read."""
    shape: tuple[int | None, ...] = (None, spec.row_dim)
    if len(message.shape) == 1 + len(spec.editing_shape) and len(spec.editing_shape) > 1:
        shape = (None, *spec.editing_shape)
    z = tensor(message, field, dtype=np.float32, shape=shape, finite=True, space=spec)
    check_count(len(z), f"{field}.shape[0]", limit)
    return np.ascontiguousarray(z.reshape(len(z), spec.row_dim), dtype=np.float32)


def keyframes(source: pb.LatentSource, field: str, spec: BundleSpec, limit: int,
              *, min_count: int = 1) -> F32 | KeyframeSeeds:
    """A LatentSource: latents [k, N] or seeds, with at least `min_count` entries."""
    which = source.WhichOneof("source")
    if which == "latents":
        z = latents(source.latents, f"{field}.latents", spec, limit)
        check_count(len(z), f"{field}.latents.shape[0]", limit, low=min_count)
        return z
    if which == "seeds":
        check_count(len(source.seeds.seeds), f"{field}.seeds.seeds", limit, low=min_count)
        seeds = list(source.seeds.seeds)
        cutoff = truncation_cutoff(source.seeds, spec, f"{field}.seeds.truncation_cutoff")
        return KeyframeSeeds(seeds, truncation_psi(source.seeds, f"{field}.seeds.truncation_psi"),
                             cutoff)
    raise InvalidArgument(f"{field} must give latents or seeds", field=field)


def keyframe_count(source: F32 | KeyframeSeeds) -> int:
    """How many latents a checked LatentSource stands for (seeds or rows)."""
    return len(source.seeds) if isinstance(source, KeyframeSeeds) else len(source)


def source_field(source: pb.LatentSource, field: str) -> str:
    """The field that sets a LatentSource's values: its ψ for seeds, else its latents."""
    if source.WhichOneof("source") == "seeds":
        return f"{field}.seeds.truncation_psi"
    return f"{field}.latents"


def class_labels(values: Sequence[int], spec: BundleSpec, *, rows: int, field: str,
                 per: str = "item", groups: int | None = None) -> I64 | None:
    """Labels for a conditional model: one for all rows, or one per `per` (item/base)."""
    if spec.condition is None:
        if values:
            raise FailedPrecondition(
                f"{spec.name} is not conditional; {field} must be empty"
            )
        return None
    if not values:
        raise InvalidArgument(
            f"{field} is required for conditional model {spec.name} "
            f"({spec.num_classes} classes: {', '.join(spec.condition.labels)})",
            field=field,
        )
    if len(values) == 1:  # the common case: one label for every row, no array of the field
        label = values[0]
        if not 0 <= label < spec.num_classes:
            raise InvalidArgument(
                f"{field} must be in [0, {spec.num_classes - 1}], got [{label}]", field=field
            )
        return np.full(rows, label, dtype=np.int64)
    arr = np.fromiter(values, dtype=np.int64, count=len(values))
    if arr.min() < 0 or arr.max() >= spec.num_classes:
        bad = [int(v) for v in arr if not 0 <= v < spec.num_classes]
        raise InvalidArgument(
            f"{field} must be in [0, {spec.num_classes - 1}], got {bad[:5]}", field=field
        )
    count = groups if groups is not None else rows
    if len(arr) != count:
        raise InvalidArgument(
            f"{field} must hold 1 label or one per {per} ({count}), got {len(arr)}", field=field
        )
    return np.repeat(arr, rows // count) if groups is not None else arr


def path(request: pb.InterpolateRequest, spec: BundleSpec, max_frames: int) -> PathRequest:
    """An InterpolateRequest's path: 2+ keyframes, 2+ steps, at most `max_frames` frames."""
    chosen = method(request.method, spec)
    output = output_format(request.output)
    keys = keyframes(request.keyframes, "keyframes", spec, max_frames, min_count=2)
    steps = check_count(request.steps, "steps", max_frames, low=2)
    count = keyframe_count(keys)
    frames = (count - 1) * (steps - 1) + 1
    if frames > max_frames:
        raise InvalidArgument(
            f"the path would have {frames} frames, over the limit of "
            f"{max_frames}; use fewer keyframes or steps", field="steps")
    return PathRequest(keys, steps, frames, chosen, output)


def edit_direction(request: pb.EditRequest, spec: BundleSpec) -> DirectionChoice:
    """An EditRequest's direction: a name, or a finite non-zero vector of the editing space's
    size."""
    which = request.WhichOneof("direction")
    conditional_on = list(request.conditional_on)
    if which == "direction_name":
        return DirectionChoice(request.direction_name, None, conditional_on)
    if which == "direction_vector":
        raw = tensor(request.direction_vector, "direction_vector", dtype=np.float32,
                     shape=(spec.editing_dim,), finite=True, space=spec)
        if float(np.linalg.norm(raw.astype(np.float64))) < 1e-12:
            raise InvalidArgument("direction_vector has zero norm", field="direction_vector")
        return DirectionChoice("", raw, conditional_on)
    raise InvalidArgument("Edit needs direction_name or direction_vector", field="direction")


async def encode_images(request: pb.EncodeRequest, spec: BundleSpec, limit: int) -> F32:
    """An EncodeRequest's images: float32 [n, C, H, W] in range, or PNGs decoded off the loop."""
    which = request.WhichOneof("input")
    if which == "images":
        images = tensor(request.images, "images", dtype=np.float32,
                        shape=(None, *spec.output.shape), finite=True)
        check_count(len(images), "images.shape[0]", limit)
        return np.asarray(images, dtype=np.float32)
    if which == "png":
        check_count(len(request.png.images), "png.images", limit)
        return await asyncio.to_thread(partial(from_png, field="png.images"),
                                       request.png.images, spec.output.shape, spec.output.range)
    raise InvalidArgument("Encode needs images or png", field="input")


def check_response_size(rows: int, spec: BundleSpec, output: Output, limit: int) -> None:
    """A generated response of `rows` items as `output` must fit in `limit` bytes (estimate):
    checked as soon as the row count is known, before latents are built or decoded."""
    per_item = 0 if output == "latents" else math.prod(spec.output.shape) * (
        4 if output == "float32" else 1)
    estimate = rows * (per_item + 4 * spec.row_dim)
    if estimate > limit:
        raise InvalidArgument(
            f"the response would be about {estimate >> 20} MiB, over the "
            f"{limit >> 20} MiB message limit; ask for fewer items or "
            "output UINT8/PNG", field="output")
