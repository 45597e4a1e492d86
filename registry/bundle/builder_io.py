"""Reading a bundle component's IO from its ONNX graph: which input is the latent, which the
class label, which output the image (or the encoder's mean and log-variance, or the mapping's
W code).

Used by `builder.build_bundle`; each component kind has one resolver in `RESOLVERS`, run in
`COMPONENT_ORDER` (a later kind sees what earlier ones found, e.g. the decoder's latent input
is checked against the mapping's W size, the encoder against the decoder's latent size and
image shape). Every error names the component and the
option that settles it::

    found = Found(latent_dim=None, output_shape=None, conditional=False)
    decoder_spec = resolve_decoder(Path("decoder.onnx"), model, {}, found)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from latentserve.registry.bundle.onnx_checks import TensorInfo, graph_io
from latentserve.registry.bundle.onnx_rewrite import (
    flatten_latent_input,
    pin_axis,
    unit_trailing_axes,
)
from latentserve.registry.bundle.spec import (
    BundleError,
    DecoderSpec,
    EncoderSpec,
    MappingSpec,
    NoiseInputSpec,
)

FLOAT, INT64 = "float32", "int64"
MAX_W_DIM = 4096
"""Largest W size the spec accepts (`mapping.w_dim`)."""


@dataclass
class Found:
    """What the components resolved so far say about the generator."""

    latent_dim: int | None
    """Size of z: stated by the caller, else read from the mapping's input (two-stage) or the
    decoder's latent input."""
    output_shape: tuple[int, int, int] | None
    """Stated by the caller, else read from the decoder's output (None while symbolic)."""
    conditional: bool
    """Whether the caller gave class labels."""
    symbolic_output: list[int] = field(default_factory=list)
    """Axes of [C, H, W] the decoder output leaves symbolic (settled by the probe batch)."""
    w_dim: int | None = None
    """Size of W, read from the mapping's output (None for one-stage generators)."""
    latent_shape: tuple[int, ...] | None = None
    """Shape of z when the latent input has more than one axis per item (a VAE's [4, 16, 16])."""
    num_ws: int | None = None
    """W+ layers: the decoder takes ws [B, num_ws, w_dim] (or the mapping returns them)."""
    output_per_layer: bool = False
    """Whether the mapping returns [B, num_ws, w_dim]."""
    noise_inputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    """The decoder's noise inputs (name, [C, H, W]) in graph order."""


Resolver = Callable[[Path, onnx.ModelProto, Mapping[str, str], Found], object]
"""(file, parsed model, role → tensor name given by the caller, found so far) → spec part."""


def _pick(kind: str, role: str, option: str, candidates: list[TensorInfo],
          everything: list[TensorInfo], names: Mapping[str, str], what: str) -> TensorInfo:
    """The tensor named for `role`, else the only candidate; errors list what the graph has."""
    listed = ", ".join(t.describe() for t in everything) or "none"
    if role in names:
        chosen = next((t for t in everything if t.name == names[role]), None)
        if chosen is None:
            raise BundleError(f"{kind}: {option} {names[role]!r} names no {what} of the graph "
                              f"(it has: {listed})")
        return chosen
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BundleError(f"{kind}: the graph has no {what} that can be the {role} "
                          f"(it has: {listed})")
    raise BundleError(f"{kind}: cannot tell which {what} is the {role}: "
                      f"{', '.join(t.describe() for t in candidates)}; name it with {option}")


def _batch_and_type(kind: str, t: TensorInfo, elem: str, rank: int, role: str) -> None:
    if t.elem != elem:
        raise BundleError(f"{kind}: {role} {t.name!r} is {t.elem}, expected {elem}")
    if t.rank != rank:
        raise BundleError(f"{kind}: {role} {t.describe()} has rank {t.rank}, expected {rank}")
    if t.fixed(0) is not None:
        raise BundleError(f"{kind}: {role} {t.name!r} has a fixed batch dimension "
                          f"({t.fixed(0)}); export it with a dynamic batch axis (torch: "
                          f"dynamic_axes={{{t.name!r}: {{0: 'batch'}}}})")


def _latent_width(kind: str, t: TensorInfo, found: Found, role: str) -> None:
    """The editing-space width of `t` (axis 1): W's size after a mapping, else latent_dim."""
    width = t.fixed(1)
    if width is None:
        raise BundleError(f"{kind}: {role} {t.describe()} has no fixed latent size (axis 1)")
    if found.w_dim is not None:
        if width != found.w_dim:
            raise BundleError(f"mapping.w_dim: the mapping outputs W codes of {found.w_dim} "
                              f"values but {kind} {role} {t.name!r} has {width} values per "
                              "item (a two-stage decoder takes W codes, an encoder returns them)")
        return
    if found.latent_dim is None:
        found.latent_dim = width
    elif width != found.latent_dim:
        raise BundleError(f"latent_dim: {found.latent_dim} was stated but {kind} {role} "
                          f"{t.name!r} has {width} values per item")


def _latent(kind: str, t: TensorInfo, found: Found, role: str) -> None:
    """A latent tensor of any rank ≥ 2: W codes [B, w_dim] or ws [B, L, w_dim] after a mapping
    (L settles num_ws), else z [B, *shape] (a shape of several axes settles latent_shape)."""
    if t.rank is None or t.rank < 2:
        raise BundleError(f"{kind}: {role} {t.describe()} must be [batch, …] with at least "
                          "one axis per item")
    _batch_and_type(kind, t, FLOAT, t.rank, role)
    dims = [t.fixed(axis) for axis in range(1, t.rank)]
    if any(d is None for d in dims):
        raise BundleError(f"{kind}: {role} {t.describe()} has no fixed latent size (axes 1…)")
    shape = tuple(d or 0 for d in dims)
    if found.w_dim is not None and t.rank == 3:  # W+: ws [B, L, w_dim]
        if shape[1] != found.w_dim:
            raise BundleError(f"mapping.w_dim: the mapping outputs W codes of {found.w_dim} "
                              f"values but {kind} {role} {t.describe()} has {shape[1]} per layer")
        if found.num_ws is not None and found.num_ws != shape[0]:
            raise BundleError(f"mapping.num_ws: {found.num_ws} layers so far but {kind} {role} "
                              f"{t.describe()} has {shape[0]}")
        found.num_ws = shape[0]
        return
    if found.w_dim is not None or t.rank == 2:
        _latent_width(kind, t, found, role)
        return
    if found.latent_shape is not None and found.latent_shape != shape:
        raise BundleError(f"latent_shape: {list(found.latent_shape)} so far but {kind} {role} "
                          f"{t.describe()} has {list(shape)}")
    found.latent_shape = shape
    size = math.prod(shape)
    if found.latent_dim is None:
        found.latent_dim = size
    elif size != found.latent_dim:
        raise BundleError(f"latent_dim: {found.latent_dim} was stated but {kind} {role} "
                          f"{t.describe()} holds {size} values per item")


def _noise_inputs(kind: str, rest: list[TensorInfo], found: Found) -> list[str]:
    """Float [B, C, H, W] inputs besides the latent: per-layer noise inputs (StyleGAN)."""
    names = []
    for t in rest:
        if t.elem != FLOAT or t.rank != 4:
            continue
        _batch_and_type(kind, t, FLOAT, 4, "noise input")
        dims = tuple(t.fixed(axis) for axis in (1, 2, 3))
        if any(d is None for d in dims):
            raise BundleError(f"{kind}: noise input {t.describe()} must have a fixed [C, H, W]")
        found.noise_inputs.append((t.name, tuple(d or 0 for d in dims)))
        names.append(t.name)
    return names


def _image_shape(kind: str, t: TensorInfo, found: Found, role: str) -> None:
    dims = [t.fixed(axis) for axis in (1, 2, 3)]
    if found.output_shape is None:
        if all(d is not None for d in dims):
            found.output_shape = (dims[0] or 0, dims[1] or 0, dims[2] or 0)
        else:
            found.symbolic_output = [i for i, d in enumerate(dims) if d is None]
        return
    for axis, (got, want) in enumerate(zip(dims, found.output_shape, strict=True)):
        if got is not None and got != want:
            raise BundleError(f"output_shape: {list(found.output_shape)} was stated but {kind} "
                              f"{role} {t.describe()} has {got} on axis {axis + 1}")


def _condition(kind: str, inputs: list[TensorInfo], names: Mapping[str, str], found: Found,
               option: str) -> str | None:
    labels = [t for t in inputs if t.elem == INT64 and t.rank == 1]
    if not found.conditional:
        if "condition" in names or labels:
            name = names.get("condition") or labels[0].name
            raise BundleError(f"labels: {kind} takes the class input {name!r} but no class "
                              "labels were given (--labels a,b,c)")
        return None
    label = _pick(kind, "condition", option, labels, inputs, names, "input")
    _batch_and_type(kind, label, INT64, 1, "condition input")
    return label.name


def resolve_mapping(path: Path, model: onnx.ModelProto, names: Mapping[str, str],
                    found: Found) -> MappingSpec:
    """The mapping's spec entry (two-stage generators): latent input float32 [B, N] → W code
    float32 [B, w_dim]; fills `found.latent_dim` (N) and `found.w_dim` from the graph."""
    kind = "mapping"
    inputs, outputs = graph_io(model)
    latent = _pick(kind, "latent", "--mapping-input", [t for t in inputs if t.elem == FLOAT],
                   inputs, names, "input")
    _latent(kind, latent, found, "latent input")
    extra = [t.name for t in inputs if t.name != latent.name]
    if extra:
        raise BundleError(f"{kind}: inputs {extra} are not the latent; a mapping takes only z "
                          "(class labels go to the decoder)")
    code = _pick(kind, "output", "--mapping-output",
                 [t for t in outputs if t.elem == FLOAT and t.rank in (2, 3)], outputs, names,
                 "output")
    _batch_and_type(kind, code, FLOAT, code.rank if code.rank in (2, 3) else 2, "output")
    if code.rank == 3:  # W+ per layer: [B, num_ws, w_dim]
        found.num_ws, found.output_per_layer = code.fixed(1), True
    width = code.fixed(code.rank - 1 if code.rank else 1)
    if width is None:
        raise BundleError(f"{kind}: output {code.describe()} has no fixed W size (axis 1)")
    if not 1 <= width <= MAX_W_DIM:
        raise BundleError(f"mapping.w_dim: output {code.name!r} has {width} values per item; "
                          f"expected 1..{MAX_W_DIM}")
    found.w_dim = width
    return MappingSpec(input=latent.name, output=code.name, w_dim=width)


def resolve_decoder(path: Path, model: onnx.ModelProto, names: Mapping[str, str],
                    found: Found) -> DecoderSpec:
    """The decoder's spec entry: latent input float32 [B, N] (W codes [B, w_dim] after a
    mapping) (+ int64 [B] label) → float32 [B, C, H, W]; fills `found.latent_dim` (one-stage)
    and `found.output_shape` from the graph."""
    kind = "decoder"
    inputs, outputs = graph_io(model)
    floats = [t for t in inputs if t.elem == FLOAT]
    if found.w_dim is not None and "latent" not in names:  # W codes: the one [B, (L,) w_dim]
        codes = [t for t in floats if t.rank in (2, 3) and t.fixed(t.rank - 1) == found.w_dim]
        floats = codes or floats
    elif len(floats) > 1 and "latent" not in names:  # noise inputs are [B, C, H, W]
        floats = [t for t in floats if t.rank != 4] or floats
    latent = _pick(kind, "latent", "--decoder-input", floats, inputs, names, "input")
    _latent(kind, latent, found, "latent input")
    label = _condition(kind, [t for t in inputs if t is not latent], names, found,
                       "--condition-input")
    noise = _noise_inputs(kind, [t for t in inputs if t.name not in (latent.name, label)],
                          found)
    extra = [t.name for t in inputs if t.name not in (latent.name, label, *noise)]
    if extra:
        raise BundleError(f"{kind}: inputs {extra} are neither the latent nor the class label; "
                          "a decoder takes only those")
    image = _pick(kind, "output", "--decoder-output",
                  [t for t in outputs if t.elem == FLOAT and t.rank == 4], outputs, names,
                  "output")
    _batch_and_type(kind, image, FLOAT, 4, "output")
    _image_shape(kind, image, found, "output")
    return DecoderSpec(input=latent.name, output=image.name, condition_input=label,
                       noise_inputs=[NoiseInputSpec(name=n, shape=list(s))
                                     for n, s in found.noise_inputs])


def resolve_encoder(path: Path, model: onnx.ModelProto, names: Mapping[str, str],
                    found: Found) -> EncoderSpec:
    """The encoder's spec entry: float32 [B, C, H, W] (+ int64 [B] label) → mean float32
    [B, N] (W codes [B, w_dim] after a mapping) and an optional log-variance, checked against
    what the decoder said."""
    kind = "encoder"
    inputs, outputs = graph_io(model)
    image = _pick(kind, "image", "--encoder-input", [t for t in inputs if t.elem == FLOAT],
                  inputs, names, "input")
    _batch_and_type(kind, image, FLOAT, 4, "image input")
    _image_shape(kind, image, found, "image input")
    label = _condition(kind, [t for t in inputs if t is not image], names, found,
                       "--encoder-condition-input")
    codes = [t for t in outputs if t.elem == FLOAT and t.rank is not None and t.rank >= 2]
    if "mean" in names or len(codes) == 1:
        mean = _pick(kind, "mean", "--encoder-mean", codes, outputs, names, "output")
    else:
        by_name = [t for t in codes if t.name.lower() in ("mu", "mean", "z_mean", "mu_z")]
        mean = _pick(kind, "mean", "--encoder-mean", by_name or codes, outputs, names, "output")
    rest = [t for t in codes if t is not mean]
    logvar: TensorInfo | None = None
    if "logvar" in names:
        logvar = _pick(kind, "logvar", "--encoder-logvar", rest, outputs, names, "output")
    elif len(rest) == 1:
        logvar = rest[0]
    elif rest:
        raise BundleError(f"{kind}: cannot tell which output is the log-variance: "
                          f"{', '.join(t.describe() for t in rest)}; name it with "
                          "--encoder-logvar")
    for role, t in (("mean output", mean), ("log-variance output", logvar)):
        if t is not None:
            _latent(kind, t, found, role)
    return EncoderSpec(input=image.name, output_mean=mean.name,
                       output_logvar=None if logvar is None else logvar.name,
                       condition_input=label)


COMPONENT_ORDER: tuple[str, ...] = ("mapping", "decoder", "encoder")
"""The component kinds a bundle can have, in the order they are resolved (the mapping first:
its W size is what the decoder takes and the encoder returns)."""
RESOLVERS: dict[str, Resolver] = {"mapping": resolve_mapping, "decoder": resolve_decoder,
                                  "encoder": resolve_encoder}


def adapt_graph(kind: str, model: onnx.ModelProto, names: Mapping[str, str],
                found: Found) -> tuple[onnx.ModelProto, str]:
    """The graph as the bundle takes it, and what was changed (`model` itself when nothing):

    - a latent input [B, N, 1, …, 1] (a DCGAN's z) is flattened to [B, N] by a Reshape in
      front of the network, which then computes exactly what it did;
    - an encoder output whose width the exporter left symbolic is pinned to the latent size
      the decoder (or mapping) already fixed (the probe batch checks it)."""
    inputs, outputs = graph_io(model)
    if kind in ("mapping", "decoder"):
        floats = [t for t in inputs if t.elem == FLOAT]
        chosen = (next((t for t in inputs if t.name == names["latent"]), None)
                  if "latent" in names else (floats[0] if len(floats) == 1 else None))
        if chosen is not None and unit_trailing_axes(model, chosen.name):
            return flatten_latent_input(model, chosen.name), (
                f"latent input {chosen.describe()} flattened to [batch, {chosen.fixed(1)}] "
                "(a Reshape in front of the network restores its shape)")
        return model, ""
    width = found.w_dim if found.w_dim is not None else found.latent_dim
    if kind != "encoder" or width is None:
        return model, ""
    pinned = [t for t in outputs if t.elem == FLOAT and t.rank == 2 and t.fixed(1) is None]
    for t in pinned:
        model = pin_axis(model, t.name, 1, width)
    if not pinned:
        return model, ""
    return model, (f"outputs {[t.name for t in pinned]} had a symbolic width; pinned to "
                   f"{width} (the latent size), checked on the probe batch")
