"""The generator bundle spec (`latentserve.json`): schema, parsing and clear errors.

A bundle is one MLflow model version: this spec plus plain files (decoder.onnx, optional
mapping.onnx and encoder.onnx, directions.npz, preview.png). Example::

    spec = BundleSpec.from_file(Path("generators/zoo/sprites-vae/latentserve.json"))
    spec.latent_dim, spec.output.shape        # 10, [1, 64, 64]

Two-stage generators (StyleGAN-like) set `mapping` (z → w) and `editing_space: "w"`: the
decoder, the encoder, the directions and `truncation_center` (w̄) then live in W, whose size is
`mapping.w_dim`; `editing_dim` is the size of the editing space either way.

Field generators add: `latent_shape` (z of shape [4, 16, 16] for a diffusers VAE; the service
holds flat C-order rows and reshapes at the ONNX boundary), a scaled prior (z = mean + scale·ε),
W+ (`mapping.num_ws`: the synthesis takes `ws [B, L, w_dim]`, directions stay vectors of W applied
to a layer range) and per-layer noise inputs (`decoder.noise_inputs`, `decoder.noise_default`).
`editing_shape` is the shape of one editing-space latent and `row_dim` its flat size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from latentserve.core.errors import LatentServeError

SCHEMA_VERSION = 1
SPEC_FILE = "latentserve.json"
DIRECTIONS_FILE = "directions.npz"
PREVIEW_FILE = "preview.png"
SIGMA_SUFFIX = "__sigma"
MAX_LATENT_DIM = 65536
"""Largest prior latent (values per item): a [4, 64, 64] latent diffusion code fits."""
MAX_NUM_WS = 64
"""Most W+ layers (StyleGAN2 at 1024² has 18)."""
"""directions.npz holds `<name>` (unit float32 [N]) and `<name>__sigma` (float32 scalar)."""


class BundleError(LatentServeError):
    """A bundle is missing, corrupt or inconsistent; the message names the file or field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputSpec(_Strict):
    """What the decoder produces: one item is a float32 tensor of `shape` within `range`."""

    shape: list[int] = Field(min_length=3, max_length=3, description="[C, H, W]")
    range: tuple[float, float] = Field(description="[lo, hi] of decoder outputs")
    kind: Literal["image"] = "image"

    @model_validator(mode="after")
    def _check(self) -> OutputSpec:
        if any(d <= 0 for d in self.shape):
            raise ValueError(f"output.shape must be positive, got {self.shape}")
        if self.shape[0] not in (1, 3):
            raise ValueError(f"output.shape[0] (channels) must be 1 or 3, got {self.shape[0]}")
        if not self.range[0] < self.range[1]:
            raise ValueError(f"output.range must be [lo, hi] with lo < hi, got {self.range}")
        return self


class ConditionSpec(_Strict):
    """Class conditioning: the decoder takes an int64 label per item."""

    kind: Literal["class"] = "class"
    num_classes: int = Field(ge=2)
    labels: list[str]

    @model_validator(mode="after")
    def _check(self) -> ConditionSpec:
        if len(self.labels) != self.num_classes:
            raise ValueError(
                f"condition.labels has {len(self.labels)} names for {self.num_classes} classes"
            )
        return self


class PriorSpec(_Strict):
    """The prior: z = mean + scale·ε with ε ~ N(0, I) (an SD-VAE: scale 1/0.18215)."""

    kind: Literal["normal"] = "normal"
    mean: float = Field(default=0.0, allow_inf_nan=False)
    scale: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)

    @property
    def standard(self) -> bool:
        """True for N(0, I): sampling and truncation exactly as before priors had parameters."""
        return self.mean == 0.0 and self.scale == 1.0


class NoiseInputSpec(_Strict):
    """One per-layer noise input of the decoder: fed float32 [B, *shape] ([B, C, H, W])."""

    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=3, description="[C, H, W]")

    @model_validator(mode="after")
    def _check(self) -> NoiseInputSpec:
        if any(d <= 0 for d in self.shape):
            raise ValueError(f"noise input {self.name!r} shape must be positive, got {self.shape}")
        return self


NoiseMode = Literal["const", "seeded", "none"]


class DecoderSpec(_Strict):
    """ONNX decoder: input `input` float32 [B, *editing_shape] (+ int64 [B] `condition_input`,
    + one float32 [B, C, H, W] per `noise_inputs` entry) → [B, C, H, W]."""

    file: str = "decoder.onnx"
    input: str = "z"
    output: str = "x"
    condition_input: str | None = None
    noise_inputs: list[NoiseInputSpec] = []
    noise_default: NoiseMode = "const"
    """const: one fixed draw (seed 0, item 0) for every item; seeded: drawn per item from the
    request's noise seed; none: zeros."""


class MappingSpec(_Strict):
    """ONNX mapping network of a two-stage generator: `input` float32 [B, N] → `output` [B, w_dim].

    The mapping is unconditional: class labels (if any) go to the decoder, so a W code means
    the same under every label and every RPC's label rules stay those of one-stage generators.
    Conditional mappings (StyleGAN2-ADA's mapping(z, c)) are not part of schema version 1.
    """

    file: str = "mapping.onnx"
    input: str = "z"
    output: str = "w"
    w_dim: int = Field(ge=1, le=4096, description="Size of W, the decoder's input")
    num_ws: int | None = Field(default=None, ge=1, le=MAX_NUM_WS,
                               description="W+: the decoder takes ws [B, num_ws, w_dim]")
    output_per_layer: bool = False
    """W+ only: the mapping returns [B, num_ws, w_dim] (else [B, w_dim], broadcast to layers)."""


class EncoderSpec(_Strict):
    """ONNX encoder: float32 [B, C, H, W] (+ int64 [B] `condition_input`) → mean [B, D] of the
    editing space (D = `BundleSpec.editing_dim`: W codes for two-stage generators)."""

    file: str = "encoder.onnx"
    input: str = "x"
    output_mean: str = "mu"
    output_logvar: str | None = "logvar"
    condition_input: str | None = None


LayerRange = tuple[int, int]
"""W+ layers [start, end)."""


def _check_layers(layers: LayerRange | None) -> None:
    if layers is not None and not 0 <= layers[0] < layers[1]:
        raise ValueError(f"layers must be [start, end) with 0 <= start < end, got {list(layers)}")


class DirectionQualitySpec(_Strict):
    """How well a direction moves what it names, measured on decoded images (edits −3…3 σ
    from fixed seeds, scored by image measures); the proto's DirectionQuality."""

    measure: str = Field(description="The image measure the direction should move")
    spearman_within: float = Field(ge=-1.0, le=1.0)
    spearman_pooled: float = Field(ge=-1.0, le=1.0)
    leak_measure: str = Field(description="The other measure a plain edit moves most")
    leak_plain: float = Field(ge=0.0)
    leak_conditional: float = Field(ge=0.0)
    reliable: bool = Field(description="spearman_within >= 0.95 and spearman_pooled >= 0.9")
    layers: LayerRange | None = None
    """W+: the layer range the quality was measured with (None: the direction's default)."""

    @model_validator(mode="after")
    def _check(self) -> DirectionQualitySpec:
        _check_layers(self.layers)
        return self


class DirectionSpec(_Strict):
    """A named latent direction; its unit vector and σ live in directions.npz."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    method: Literal["supervised", "pca", "sefa", "user"]
    unit: str = Field(description="What strength 1.0 means, e.g. '1 σ of latent codes along d'")
    factor: str | None = None
    quality: DirectionQualitySpec | None = None
    layers: LayerRange | None = None
    """W+ only: the default layer range [start, end) an edit applies to (None: all layers)."""

    @model_validator(mode="after")
    def _check(self) -> DirectionSpec:
        _check_layers(self.layers)
        return self


class CircularSpec(_Strict):
    """A circular factor (orientation, hue): latents that differ by `turn` draw the same image.

    Encode and Project return, among z + k·turn (k integer), the one nearest the prior's
    centre (the canonical representative)."""

    factor: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    turn: list[float] = Field(description="Editing-space displacement of one full turn "
                                          "(one value per row entry; not all zero)")


class BundleSpec(_Strict):
    """The whole `latentserve.json`."""

    schema_version: int
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    latent_dim: int = Field(ge=1, le=MAX_LATENT_DIM)
    latent_shape: list[int] | None = None
    """Shape of one prior latent z (prod = latent_dim); None: [latent_dim]."""
    prior: PriorSpec = PriorSpec()
    output: OutputSpec
    condition: ConditionSpec | None = None
    decoder: DecoderSpec = DecoderSpec()
    mapping: MappingSpec | None = None
    editing_space: Literal["z", "w"] = "z"
    encoder: EncoderSpec | None = None
    max_batch_size: int = Field(64, ge=1, le=4096)
    directions: list[DirectionSpec] = []
    truncation_center: list[float] | None = None
    circular: list[CircularSpec] = []
    """Circular factors of the editing space (Encode and Project return canonical latents)."""
    metrics: dict[str, float] = {}
    metric_notes: dict[str, str] = {}
    provenance: dict[str, Any] = {}

    @field_validator("prior", mode="before")
    @classmethod
    def _prior_name(cls, value: Any) -> Any:
        """`prior: "normal"` (files before priors had parameters) reads as N(0, I)."""
        return {"kind": "normal"} if value == "normal" else value

    @model_validator(mode="after")
    def _check(self) -> BundleSpec:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})"
            )
        names = [d.name for d in self.directions]
        if len(set(names)) != len(names):
            raise ValueError(f"directions has duplicate names: {names}")
        if self.mapping is not None and self.editing_space != "w":
            raise ValueError("editing_space must be 'w' when mapping is set (a two-stage "
                             "generator's decoder takes W codes)")
        if self.mapping is None and self.editing_space == "w":
            raise ValueError("editing_space 'w' needs a mapping (z → w network)")
        if self.editing_space == "w" and self.truncation_center is None:
            raise ValueError("truncation_center is required when editing_space is 'w': the mean "
                             "w̄ of ≥ 10k mapped samples (registry.truncation.mean_w)")
        if self.truncation_center is not None and len(self.truncation_center) != self.editing_dim:
            size = ("mapping.w_dim" if self.mapping else "latent_dim") + f" is {self.editing_dim}"
            raise ValueError(f"truncation_center has {len(self.truncation_center)} values, {size}")
        if (self.condition is None) != (self.decoder.condition_input is None):
            raise ValueError("decoder.condition_input must be set exactly when condition is set")
        self._check_shapes()
        for c in self.circular:
            if len(c.turn) != self.row_dim or not any(c.turn) or not all(
                    math.isfinite(v) for v in c.turn):
                raise ValueError(f"circular.{c.factor}.turn must hold {self.row_dim} finite "
                                 f"values, not all zero")
        return self

    def _check_shapes(self) -> None:
        """latent_shape, W+ layers, noise inputs and direction layer ranges agree."""
        if self.latent_shape is not None:
            if not 1 <= len(self.latent_shape) <= 4 or any(d <= 0 for d in self.latent_shape):
                raise ValueError(f"latent_shape must hold 1 to 4 positive sizes, got "
                                 f"{self.latent_shape}")
            if math.prod(self.latent_shape) != self.latent_dim:
                raise ValueError(f"latent_shape {self.latent_shape} holds "
                                 f"{math.prod(self.latent_shape)} values, latent_dim is "
                                 f"{self.latent_dim}")
        m = self.mapping
        if m is not None and m.num_ws is None and m.output_per_layer:
            raise ValueError("mapping.output_per_layer needs mapping.num_ws")
        names = [n.name for n in self.decoder.noise_inputs]
        taken = {self.decoder.input, self.decoder.condition_input}
        if len(set(names)) != len(names) or taken & set(names):
            raise ValueError(f"decoder.noise_inputs names must be distinct and differ from the "
                             f"latent and label inputs, got {names}")
        for d in self.directions:
            if d.layers is not None and self.num_ws == 0:
                raise ValueError(f"directions.{d.name}.layers: only W+ generators "
                                 "(mapping.num_ws) have layers")
            for layers, where in ((d.layers, "layers"),
                                  (d.quality.layers if d.quality else None, "quality.layers")):
                if layers is not None and layers[1] > self.num_ws:
                    raise ValueError(f"directions.{d.name}.{where} {list(layers)} ends past "
                                     f"mapping.num_ws {self.num_ws}")

    @property
    def prior_shape(self) -> tuple[int, ...]:
        """Shape of one prior latent z: `latent_shape`, else (latent_dim,)."""
        return tuple(self.latent_shape) if self.latent_shape else (self.latent_dim,)

    @property
    def num_ws(self) -> int:
        """W+ layers L (`mapping.num_ws`); 0 when the decoder takes one w (or z)."""
        if self.mapping is None or self.mapping.num_ws is None:
            return 0
        return self.mapping.num_ws

    @property
    def editing_shape(self) -> tuple[int, ...]:
        """Shape of one editing-space latent as the decoder takes it and the wire states it:
        (L, w_dim) for W+, (w_dim,) for W, `prior_shape` for Z."""
        if self.mapping is None:
            return self.prior_shape
        return (self.num_ws, self.mapping.w_dim) if self.num_ws else (self.mapping.w_dim,)

    @property
    def row_dim(self) -> int:
        """Values in one editing-space latent (a flat C-order row in the service): L·w_dim for
        W+, else `editing_dim`."""
        return math.prod(self.editing_shape)

    @property
    def editing_dim(self) -> int:
        """Size of the editing space: `mapping.w_dim` for two-stage generators, else latent_dim.

        Directions and truncation_center have this size; so do decoder inputs, encoder outputs
        and the latents the service takes or returns except for W+ generators, whose latents
        hold `num_ws` such vectors (`row_dim`); seeds draw z of `latent_dim`."""
        return self.mapping.w_dim if self.mapping is not None else self.latent_dim

    @property
    def num_classes(self) -> int:
        """0 for unconditional generators."""
        return self.condition.num_classes if self.condition else 0

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = SPEC_FILE) -> BundleSpec:
        """Validate a decoded spec, turning schema errors into one BundleError naming fields.
        """
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"{source}: schema_version {version!r} is not supported (this latentserve reads "
                f"schema_version {SCHEMA_VERSION})"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: "
                f"{err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise BundleError(f"{source}: {problems}") from None

    @classmethod
    def from_file(cls, path: Path) -> BundleSpec:
        """Read and validate `latentserve.json`."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"{path}: spec file is missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise BundleError(f"{path}: must hold a JSON object")
        return cls.parse(raw, source=str(path))

    def to_json(self) -> str:
        """Pretty JSON, stable key order, for writing `latentserve.json`.

        One-stage specs leave out `mapping` and `editing_space` (their defaults), so their
        files read exactly as before two-stage generators existed."""
        raw = self.model_dump(mode="json", exclude_defaults=False)
        if self.mapping is None:
            del raw["mapping"]
            if self.editing_space == "z":
                del raw["editing_space"]
        else:
            for key in ("num_ws", "output_per_layer"):
                if not raw["mapping"][key]:
                    del raw["mapping"][key]
        if self.latent_shape is None:
            del raw["latent_shape"]
        if self.prior.standard:
            raw["prior"] = "normal"
        if not self.decoder.noise_inputs:
            del raw["decoder"]["noise_inputs"]
            del raw["decoder"]["noise_default"]
        for direction in raw["directions"]:
            if direction["layers"] is None:
                del direction["layers"]
            if direction["quality"] is not None and direction["quality"]["layers"] is None:
                del direction["quality"]["layers"]
        return json.dumps(raw, indent=2) + "\n"
