"""OIP model names and metadata for latentserve's generators.

Each registered generator `<name>` appears as three OIP models:

- `<name>` decodes: inputs `latent` FP32 [n, D] and, for conditional generators,
  `class_label` INT32 [n]; output `image`.
- `<name>.sample` samples: parameters `seed`, `n`, `truncation_psi`; input `class_label`
  (conditional generators; one label, or one per item); outputs `image` and `latent`.
- `<name>.edit` edits: base latents from input `latent` FP32 [b, D] or parameter `seeds`;
  parameters `direction`, `strengths`, `truncation_psi` (with seeds), `conditional_on`;
  input `class_label` (conditional generators); outputs `image` and `latent`.

`image` is FP32 [n, C, H, W] in the model's output range (exactly what Decode returns as
float32), `latent` the editing-space latents. `class_label` is required by conditional
generators only. List-valued parameters are strings of comma-separated values
("-2,0,2"). The OIP model version is a registry version ("3"), an alias ("staging"), or empty
for the service's default alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from latentserve.core.errors import InvalidArgument
from latentserve.v1 import generator_pb2 as pb

Kind = Literal["decode", "sample", "edit"]
SUFFIXES: dict[str, Kind] = {".sample": "sample", ".edit": "edit"}
MAX_NAME = 256


@dataclass(frozen=True)
class OipModel:
    """One OIP model: which generator, which operation, which version."""

    generator: str
    kind: Kind
    version: str

    @property
    def name(self) -> str:
        """The OIP model name."""
        return self.generator if self.kind == "decode" else f"{self.generator}.{self.kind}"

    def ref(self) -> pb.ModelRef:
        """The GeneratorService ModelRef of this model's version."""
        ref = pb.ModelRef(name=self.generator)
        if self.version.isdigit():
            ref.version = int(self.version)
        elif self.version:
            ref.alias = self.version
        return ref


def parse(name: str, version: str = "") -> OipModel:
    """The OIP model a (name, version) pair names."""
    if not name or len(name) > MAX_NAME:
        raise InvalidArgument(f"model name must be 1 to {MAX_NAME} characters", field="model_name")
    if len(version) > MAX_NAME:
        raise InvalidArgument(f"model version must be at most {MAX_NAME} characters",
                              field="model_version")
    if version.isdigit() and (int(version) < 1 or len(version) > 18):
        raise InvalidArgument("model version must be a registry version ≥ 1, an alias, or "
                              "empty", field="model_version")
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return OipModel(name[: -len(suffix)], kind, version)
    return OipModel(name, "decode", version)


@dataclass(frozen=True)
class TensorMeta:
    """One input or output of an OIP model."""

    name: str
    datatype: str
    shape: list[int]


def editing_dim(info: pb.ModelInfo) -> int:
    """D, the size of one editing-space latent."""
    return int(info.w_dim) if info.editing_space == pb.LATENT_SPACE_W and info.w_dim else int(
        info.latent_dim)


def inputs(model: OipModel, info: pb.ModelInfo) -> list[TensorMeta]:
    """The input tensors `model` takes."""
    found = []
    if model.kind in ("decode", "edit"):
        found.append(TensorMeta("latent", "FP32", [-1, editing_dim(info)]))
    if info.num_classes:
        found.append(TensorMeta("class_label", "INT32", [-1]))
    return found


def outputs(model: OipModel, info: pb.ModelInfo) -> list[TensorMeta]:
    """The output tensors `model` returns."""
    found = [TensorMeta("image", "FP32", [-1, *[int(d) for d in info.output_shape]])]
    if model.kind != "decode":
        found.append(TensorMeta("latent", "FP32", [-1, editing_dim(info)]))
    return found
