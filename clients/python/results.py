"""Typed SDK results (frozen dataclasses) and their construction from response messages.

Arrays in results are read-only views of the response bytes (no copy); `.copy()` them to
modify. Example::

    out = client.sample("sprites-vae", n=8, seed=1)
    out.latents.shape, out.images.shape, out.model.version   # (8, 10) (8, 1, 64, 64) 1
    out.grid(ncols=4).save("grid.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from latentserve.core.tensors import from_tensor
from latentserve.v1 import generator_pb2 as pb

from . import animation as _animation
from . import images as _images

if TYPE_CHECKING:
    from PIL import Image

LatentSpace = Literal["z", "w", "w+", ""]
"""The space of a result's latents: "z" (the prior's), "w" (a two-stage generator's mapped
space), "w+" (one w per synthesis layer: [n, num_ws, w_dim]) or "" when the server did not say
(then it is the model's editing space)."""

_SPACES: dict[int, LatentSpace] = {pb.LATENT_SPACE_Z: "z", pb.LATENT_SPACE_W: "w",
                                   pb.LATENT_SPACE_W_PLUS: "w+"}
_NOISE_MODES = {pb.NOISE_MODE_CONST: "const", pb.NOISE_MODE_SEEDED: "seeded",
                pb.NOISE_MODE_NONE: "none"}


def latent_space_from_proto(value: int) -> LatentSpace:
    """The SDK name of a LatentSpace enum value ("" for unspecified or unknown values)."""
    return _SPACES.get(value, "")


@dataclass(frozen=True)
class ResolvedModel:
    """The generator version that served a call; pass it back as `model` to pin that version."""

    name: str
    version: int
    alias: str = ""

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" + (f" (@{self.alias})" if self.alias else "")


@dataclass(frozen=True, eq=False)
class GenerateResult:
    """Latents and images from Sample, Interpolate, Edit or Decode (or one stream chunk).

    `latents` are in the model's editing space, named by `latent_space` ("w" for two-stage
    generators: W codes after mapping and truncation). `images` is float32 or uint8
    [n, C, H, W] (None for PNG / latents-only output), `png` one PNG per row for PNG output,
    `offset` the index of the first row (stream chunks), `output_range` the model's float
    range when the server sent it, `columns` the grid layout of the call that made it (see
    `grid`). Example::

        out = client.edit("sprites-vae", seeds=[1, 2], direction="scale", strengths=[-1, 0, 1])
        out.grid()             # rows = bases, columns = strengths
        path = client.interpolate("sprites-vae", seeds=[1, 2, 3], steps=8)
        len(path)              # (3 - 1) * (8 - 1) + 1 = 15 frames
        path.grid()            # one row of 15 frames (the CLI's strip)
        path.save_animation("walk.gif", fps=12, scale=4)
    """

    model: ResolvedModel
    latents: npt.NDArray[np.float32]
    images: npt.NDArray[Any] | None
    png: list[bytes]
    offset: int = 0
    output_range: tuple[float, float] | None = None
    columns: int | None = None
    latent_space: LatentSpace = ""

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def to_pil(self) -> list[Image.Image]:
        """One PIL image per row (needs Pillow; float32 images need `output_range`)."""
        if self.images is not None:
            return _images.to_pil_images(self.images, self.output_range)
        if self.png:
            return _images.pngs_to_pil(self.png)
        raise ValueError("this result has no images (it was requested with output='latents')")

    def grid(self, ncols: int | None = None, *, padding: int = 0) -> Image.Image:
        """All rows pasted into one PIL image, `ncols` per row (needs Pillow).

        The layout rule (the CLI uses the same): an interpolation path is one row of frames,
        an edit sweep has one row per base and one column per strength, anything else
        (samples, decodes, stream chunks) is about square, ceil(√n) columns. `ncols`
        overrides it.
        """
        return _images.grid(self.to_pil(), ncols or self.columns, padding=padding)

    @classmethod
    def join(cls, chunks: Sequence[GenerateResult], columns: int | None = None) -> GenerateResult:
        """One result from stream chunks in order (e.g. `stream_interpolate`'s); `columns`
        sets its grid layout (an interpolation path: `columns=len(path)`, one row)."""
        if not chunks:
            raise ValueError("join needs at least one chunk")
        images = [c.images for c in chunks if c.images is not None]
        first = chunks[0]
        return cls(
            model=first.model,
            latents=np.concatenate([c.latents for c in chunks]),
            images=np.concatenate(images) if images else None,
            png=[data for c in chunks for data in c.png],
            offset=first.offset,
            output_range=first.output_range,
            columns=columns,
            latent_space=first.latent_space,
        )

    def save_animation(
        self, path: str | Path, *, fps: float = 12.0, loop: bool = True, scale: int = 1
    ) -> Path:
        """Write the rows as an animation: .gif or .apng (needs Pillow), .mp4 (needs PyAV);
        `scale` enlarges frames by an integer factor (nearest neighbour)."""
        return _animation.save_animation(self.to_pil(), path, fps=fps, loop=loop, scale=scale)


@dataclass(frozen=True, eq=False)
class EncodeResult:
    """Posterior-mean latents float32 [n, D] from Encode, in the model's editing space
    (`latent_space`: "z", "w", or "" when the server did not say)."""

    model: ResolvedModel
    latents: npt.NDArray[np.float32]
    latent_space: LatentSpace = ""

    def __len__(self) -> int:
        return int(self.latents.shape[0])


@dataclass(frozen=True)
class DirectionQuality:
    """How well a direction moves what it names, measured on decoded images when its bundle
    was built (see the proto's DirectionQuality)."""

    measure: str
    spearman_within: float
    spearman_pooled: float
    leak_measure: str
    leak_plain: float
    leak_conditional: float
    reliable: bool


@dataclass(frozen=True)
class DirectionInfo:
    """A named latent direction; strength 1.0 moves a latent `sigma` along it (`unit` says what
    that means); `quality` is None when nothing was measured."""

    name: str
    method: str
    unit: str
    factor: str
    sigma: float
    quality: DirectionQuality | None = None
    layers: tuple[int, int] | None = None
    """W+ generators: the default layer range [start, end) of edits (None: every layer)."""


@dataclass(frozen=True)
class ModelInfo:
    """Description of one generator version (GetModel). Example::

    info = client.get_model("digits-cvae")
    info.latent_dim, info.num_classes, [d.name for d in info.directions]

    `latent_dim` is the size of Z (what seeds draw); latents passed to and returned by the
    service are in `editing_space` ("w" for two-stage generators with `has_mapping`), of size
    `editing_dim` (`w_dim` for W). `encoder_conditional`: Encode needs class labels.
    """

    model: ResolvedModel
    latent_dim: int
    prior: str
    output_shape: tuple[int, ...]
    output_min: float
    output_max: float
    has_encoder: bool
    num_classes: int
    class_names: tuple[str, ...]
    directions: tuple[DirectionInfo, ...]
    max_batch_size: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    editing_space: LatentSpace = "z"
    has_mapping: bool = False
    w_dim: int = 0
    encoder_conditional: bool = False
    latent_shape: tuple[int, ...] = ()
    """Shape of one prior latent z, e.g. (4, 16, 16); (latent_dim,) for flat latents."""
    num_ws: int = 0
    """W+ generators: synthesis layers (latents [n, num_ws, w_dim]); 0 otherwise."""
    prior_mean: float = 0.0
    prior_scale: float = 1.0
    """The prior z = prior_mean + prior_scale · ε."""
    noise_inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """The decoder's per-layer noise inputs: (name, [C, H, W])."""
    noise_default: str = ""
    """const | seeded | none: the noise when a call names none ("" without noise inputs)."""

    @property
    def editing_dim(self) -> int:
        """Size of one editing-space vector: w_dim for W and W+, else latent_dim (a W+ latent
        holds num_ws of them; see `editing_shape`)."""
        return self.w_dim if self.editing_space in ("w", "w+") else self.latent_dim

    @property
    def editing_shape(self) -> tuple[int, ...]:
        """Shape of one latent the service takes and returns: (num_ws, w_dim) for W+, (w_dim,)
        for W, `latent_shape` for Z."""
        if self.num_ws:
            return (self.num_ws, self.w_dim)
        if self.editing_space == "w":
            return (self.w_dim,)
        return self.latent_shape or (self.latent_dim,)

    @property
    def output_range(self) -> tuple[float, float]:
        """(output_min, output_max): the range of float32 images."""
        return (self.output_min, self.output_max)

    @property
    def is_conditional(self) -> bool:
        """Whether the generator takes class labels."""
        return self.num_classes > 0

    def direction(self, name: str) -> DirectionInfo:
        """The direction called `name` (KeyError listing the known names otherwise)."""
        for d in self.directions:
            if d.name == name:
                return d
        raise KeyError(
            f"{self.model.name} has no direction {name!r}; it has "
            f"{[d.name for d in self.directions]}"
        )


@dataclass(frozen=True)
class ModelSummary:
    """One registered generator (ListModels): its versions, aliases and the loaded version."""

    name: str
    versions: tuple[int, ...]
    aliases: Mapping[str, int]
    loaded_version: int


def resolved_from_proto(msg: pb.ResolvedModel) -> ResolvedModel:
    """ResolvedModel from its message."""
    return ResolvedModel(msg.name, int(msg.version), msg.alias)


def generate_result_from_proto(
    resp: pb.GenerateResponse,
    output_range: tuple[float, float] | None = None,
    *,
    columns: int | None = None,
) -> GenerateResult:
    """GenerateResult from a GenerateResponse (validates the tensors); `output_range` defaults
    to the one the response carries (servers before `GenerateResponse.output_range` send none)."""
    if output_range is None and resp.HasField("output_range"):
        output_range = (resp.output_range.min, resp.output_range.max)
    latents = _shaped_latents(resp.latents)
    images = None
    if resp.HasField("images"):
        images = from_tensor(resp.images, field="images", ndim=4)
    return GenerateResult(
        model=resolved_from_proto(resp.model),
        latents=latents,
        images=images,
        png=list(resp.png),
        offset=int(resp.offset),
        output_range=output_range,
        columns=columns,
        latent_space=latent_space_from_proto(resp.latent_space),
    )


def encode_result_from_proto(resp: pb.EncodeResponse) -> EncodeResult:
    """EncodeResult from an EncodeResponse (validates the latents)."""
    latents = _shaped_latents(resp.latents)
    return EncodeResult(model=resolved_from_proto(resp.model), latents=latents,
                        latent_space=latent_space_from_proto(resp.latent_space))


def model_info_from_proto(msg: pb.ModelInfo) -> ModelInfo:
    """ModelInfo from its message."""
    return ModelInfo(
        model=resolved_from_proto(msg.model),
        latent_dim=int(msg.latent_dim),
        prior=msg.prior,
        output_shape=tuple(int(d) for d in msg.output_shape),
        output_min=float(msg.output_min),
        output_max=float(msg.output_max),
        has_encoder=bool(msg.has_encoder),
        num_classes=int(msg.num_classes),
        class_names=tuple(msg.class_names),
        directions=tuple(
            DirectionInfo(d.name, d.method, d.unit, d.factor, float(d.sigma),
                          _quality(d.quality) if d.HasField("quality") else None,
                          _layers(d.layers) if d.HasField("layers") else None)
            for d in msg.directions
        ),
        max_batch_size=int(msg.max_batch_size),
        metrics=dict(sorted(msg.metrics.items())),
        aliases=tuple(msg.aliases),
        description=msg.description,
        editing_space=latent_space_from_proto(msg.editing_space) or "z",
        has_mapping=bool(msg.has_mapping),
        w_dim=int(msg.w_dim),
        encoder_conditional=bool(msg.encoder_conditional),
        latent_shape=tuple(int(d) for d in msg.latent_shape) or (int(msg.latent_dim),),
        num_ws=int(msg.num_ws),
        prior_mean=float(msg.prior_mean),
        prior_scale=float(msg.prior_scale) or 1.0,
        noise_inputs=tuple((n.name, tuple(int(d) for d in n.shape)) for n in msg.noise_inputs),
        noise_default=_NOISE_MODES.get(msg.noise_default, ""),
    )


def model_summary_from_proto(msg: pb.ModelSummary) -> ModelSummary:
    """ModelSummary from its message."""
    return ModelSummary(
        name=msg.name,
        versions=tuple(int(v) for v in msg.versions),
        aliases=dict(sorted(msg.aliases.items())),
        loaded_version=int(msg.loaded_version),
    )


def _shaped_latents(tensor: pb.Tensor) -> npt.NDArray[np.float32]:
    """Response latents as the server shaped them: [n, D], [n, *latent_shape] or [n, L, w_dim]."""
    latents: npt.NDArray[np.float32] = from_tensor(tensor, field="latents", dtype=np.float32)
    if latents.ndim < 2:
        raise ValueError(f"latents must be [n, ...], got shape {list(latents.shape)}")
    return latents


def _layers(msg: pb.LayerRange) -> tuple[int, int]:
    return int(msg.start), int(msg.end)


def _quality(msg: pb.DirectionQuality) -> DirectionQuality:
    return DirectionQuality(
        msg.measure, float(msg.spearman_within), float(msg.spearman_pooled), msg.leak_measure,
        float(msg.leak_plain), float(msg.leak_conditional), bool(msg.reliable),
    )  # fmt: skip
