"""Model references: which generator version a call targets, and how to write one.

A model is named by a string (`"sprites-vae"`, `"sprites-vae@staging"`, `"sprites-vae:3"`),
a `ModelRef`, or a `ResolvedModel` from an earlier result (pins that version). Example::

    parse_model_ref("sprites-vae@staging")          # ModelRef(name='sprites-vae', alias='staging')
    parse_model_ref("sprites-vae", version=3)       # ModelRef(name='sprites-vae', version=3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from latentserve.v1 import generator_pb2 as pb


@dataclass(frozen=True)
class ModelRef:
    """A generator version selector: a pinned `version`, an `alias`, or neither (production).

    An empty `name` selects the service's default model. Example::

        client.sample(ModelRef("digits-cvae", alias="staging"), n=4)
    """

    name: str = ""
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.alias is not None:
            raise ValueError(
                f"model: give a version or an alias, not both "
                f"(version={self.version}, alias={self.alias!r})"
            )
        if self.version is not None and (isinstance(self.version, bool) or self.version < 1):
            raise ValueError(f"model version must be an integer ≥ 1, got {self.version!r}")
        if self.alias is not None and not self.alias:
            raise ValueError("model alias must not be empty")

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name

    def to_proto(self) -> pb.ModelRef:
        """The wire form of this reference."""
        if self.version is not None:
            return pb.ModelRef(name=self.name, version=self.version)
        if self.alias is not None:
            return pb.ModelRef(name=self.name, alias=self.alias)
        return pb.ModelRef(name=self.name)


@runtime_checkable
class ModelRefLike(Protocol):
    """Anything with `name`, `version` and `alias` attributes (ModelRef, ResolvedModel, ...)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int | None: ...
    @property
    def alias(self) -> str | None: ...


ModelArg: TypeAlias = str | ModelRefLike | pb.ModelRef
"""What SDK methods accept as `model`."""


def _parse_string(text: str) -> ModelRef:
    text = text.strip()
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        if not alias:
            raise ValueError(f"model {text!r}: empty alias after '@'")
        return ModelRef(name, alias=alias)
    if ":" in text:
        name, version = text.rsplit(":", 1)
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"model {text!r}: version after ':' must be an integer ≥ 1")
        return ModelRef(name, version=int(version))
    return ModelRef(text)


def _from_object(model: ModelRefLike | pb.ModelRef) -> ModelRef:
    if isinstance(model, pb.ModelRef):
        which = model.WhichOneof("selector")
        if which == "version":
            return ModelRef(model.name, version=model.version)
        if which == "alias":
            return ModelRef(model.name, alias=model.alias)
        return ModelRef(model.name)
    version = model.version or None  # a ResolvedModel-like object pins its version
    alias = None if version is not None else (model.alias or None)
    return ModelRef(model.name, version=version, alias=alias)


def parse_model_ref(
    model: ModelArg, *, version: int | None = None, alias: str | None = None
) -> ModelRef:
    """Normalise a model argument plus optional `version=`/`alias=` keywords into a ModelRef.

    The keywords override a selector given in the string or object; giving both keywords is
    an error. Example::

        parse_model_ref("sprites-vae:2").version                # 2
        parse_model_ref("sprites-vae", alias="staging").alias   # 'staging'
    """
    if isinstance(model, str):
        ref = _parse_string(model)
    elif isinstance(model, pb.ModelRef | ModelRefLike):
        ref = _from_object(model)
    else:
        raise TypeError(
            f"model must be a str, ModelRef or ResolvedModel, got {type(model).__name__}"
        )
    if version is not None and alias is not None:
        raise ValueError(
            f"model: give version= or alias=, not both (version={version}, alias={alias!r})"
        )
    if version is not None:
        return ModelRef(ref.name, version=version)
    if alias is not None:
        return ModelRef(ref.name, alias=alias)
    return ref
