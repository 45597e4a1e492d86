"""The generator bundle spec (`latentserve.json`): schema, parsing and clear errors.

A bundle is one MLflow model version: this spec plus plain files (decoder.onnx, optional
mapping.onnx and encoder.onnx, directions.npz, preview.png). Example::

    spec = BundleSpec.from_file(Path("generators/zoo/sprites-vae/latentserve.json"))
    spec.latent_dim, spec.output.shape        # 10, [1, 64, 64]

Two-stage generators (StyleGAN-like) set `mapping` (z → w) and `editing_space: "w"`: the
decoder, the encoder, the directions and `truncation_center` (w̄) then live in W, whose size is
`mapping.w_dim`; `editing_dim` is the size of the editing space either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentserve.core.errors import LatentServeError

SCHEMA_VERSION = 1
SPEC_FILE = "latentserve.json"
DIRECTIONS_FILE = "directions.npz"
PREVIEW_FILE = "preview.png"
SIGMA_SUFFIX = "__sigma"
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


class DecoderSpec(_Strict):
    """ONNX decoder: input `input` float32 [B, N] (+ int64 [B] `condition_input`) → [B, C, H, W]."""

    file: str = "decoder.onnx"
    input: str = "z"
    output: str = "x"
    condition_input: str | None = None


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


class EncoderSpec(_Strict):
    """ONNX encoder: float32 [B, C, H, W] (+ int64 [B] `condition_input`) → mean [B, D] of the
    editing space (D = `BundleSpec.editing_dim`: W codes for two-stage generators)."""

    file: str = "encoder.onnx"
    input: str = "x"
    output_mean: str = "mu"
    output_logvar: str | None = "logvar"
    condition_input: str | None = None


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


class DirectionSpec(_Strict):
    """A named latent direction; its unit vector and σ live in directions.npz."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    method: Literal["supervised", "pca", "sefa", "user"]
    unit: str = Field(description="What strength 1.0 means, e.g. '1 σ of latent codes along d'")
    factor: str | None = None
    quality: DirectionQualitySpec | None = None


class BundleSpec(_Strict):
    """The whole `latentserve.json`."""

    schema_version: int
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    latent_dim: int = Field(ge=1, le=4096)
    prior: Literal["normal"] = "normal"
    output: OutputSpec
    condition: ConditionSpec | None = None
    decoder: DecoderSpec = DecoderSpec()
    mapping: MappingSpec | None = None
    editing_space: Literal["z", "w"] = "z"
    encoder: EncoderSpec | None = None
    max_batch_size: int = Field(64, ge=1, le=4096)
    directions: list[DirectionSpec] = []
    truncation_center: list[float] | None = None
    metrics: dict[str, float] = {}
    metric_notes: dict[str, str] = {}
    provenance: dict[str, Any] = {}

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
        return self

    @property
    def editing_dim(self) -> int:
        """Size of the editing space: `mapping.w_dim` for two-stage generators, else latent_dim.

        Decoder inputs, encoder outputs, directions, truncation_center and every latent the
        service takes or returns have this size; seeds draw z of `latent_dim`."""
        return self.mapping.w_dim if self.mapping is not None else self.latent_dim

    @property
    def num_classes(self) -> int:
        """0 for unconditional generators."""
        return self.condition.num_classes if self.condition else 0

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = SPEC_FILE) -> BundleSpec:
        """Validate a decoded spec, turning schema errors into one BundleError naming fields."""
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
        raw = self.model_dump(mode="json")
        if self.mapping is None:
            del raw["mapping"]
            if self.editing_space == "z":
                del raw["editing_space"]
        return json.dumps(raw, indent=2) + "\n"
