"""Single request fields from the SDK's Python arguments (the request builders in `wire` use
them).

Each checks what the wire types cannot hold (negative counts, both or neither of
`seeds`/`latents`, unknown enum names) and raises ValueError/TypeError naming the argument;
range and model-specific checks stay with the service. Example::

    output_format("uint8")                      # OUTPUT_FORMAT_UINT8
    latent_source([1, 2], None, 0.7)            # LatentSource(seeds=SeedList(...))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from latentserve.core.tensors import to_tensor
from latentserve.v1 import generator_pb2 as pb

from . import images as _images

OutputArg = str | int | None
"""`output=`: "float32" | "uint8" | "png" | "latents", or an `OutputFormat` enum value."""

MethodArg = str | int | None
"""`method=`: "lerp" | "slerp" | "vp_lerp", an `InterpolationMethod` enum value, or None for
the model's default (slerp in Z, lerp in W)."""

Labels = int | np.integer[Any] | Sequence[int] | npt.NDArray[np.integer[Any]] | None
"""`class_labels=`: one label for all items, or one per item."""

ImagesArg = npt.NDArray[Any] | Sequence[Any] | bytes
"""Encode input: float [n, C, H, W] array, uint8 [n, C, H, W] array, PNG bytes or PIL images."""

_OUTPUTS = {
    "float32": pb.OUTPUT_FORMAT_FLOAT32,
    "uint8": pb.OUTPUT_FORMAT_UINT8,
    "png": pb.OUTPUT_FORMAT_PNG,
    "latents": pb.OUTPUT_FORMAT_LATENTS_ONLY,
}
_METHODS = {
    "lerp": pb.INTERPOLATION_METHOD_LERP,
    "slerp": pb.INTERPOLATION_METHOD_SLERP,
    "vp_lerp": pb.INTERPOLATION_METHOD_VP_LERP,
}


def _enum(value: str | int, names: Mapping[str, int], enum: Any, arg: str) -> Any:
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in names:
            raise ValueError(f"{arg} must be one of {sorted(names)}, got {value!r}")
        return names[key]
    if isinstance(value, bool) or int(value) not in enum.values():
        raise ValueError(f"{arg} must be one of {sorted(names)} or a {enum.DESCRIPTOR.name} value")
    return int(value)


def output_format(value: OutputArg) -> pb.OutputFormat.ValueType:
    """The OutputFormat for an `output=` argument (None → FLOAT32)."""
    if value is None:
        return pb.OUTPUT_FORMAT_FLOAT32
    result: pb.OutputFormat.ValueType = _enum(value, _OUTPUTS, pb.OutputFormat, "output")
    return result


def interpolation_method(value: MethodArg) -> pb.InterpolationMethod.ValueType:
    """The InterpolationMethod for a `method=` argument (None → UNSPECIFIED: the server uses
    the model's default, SLERP in Z and LERP in W)."""
    if value is None:
        return pb.INTERPOLATION_METHOD_UNSPECIFIED
    result: pb.InterpolationMethod.ValueType = _enum(
        value, _METHODS, pb.InterpolationMethod, "method"
    )
    return result


def uint(value: Any, arg: str, bits: int) -> int:
    """`value` as an unsigned integer of `bits` bits (TypeError/ValueError naming `arg`)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{arg} must be an integer, got {type(value).__name__}")
    if not 0 <= int(value) < 2**bits:
        raise ValueError(f"{arg} must be between 0 and {2**bits - 1}, got {value}")
    return int(value)


def class_labels(value: Labels) -> list[int]:
    """`class_labels=` as a list of int32 labels (None → [])."""
    if value is None:
        return []
    if isinstance(value, int | np.integer):
        items: list[Any] = [value]
    elif isinstance(value, np.ndarray):
        items = value.ravel().tolist()
    else:
        items = list(value)
    out = []
    for i, label in enumerate(items):
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise TypeError(f"class_labels[{i}] must be an integer, got {label!r}")
        if not -(2**31) <= int(label) < 2**31:
            raise ValueError(f"class_labels[{i}] is out of int32 range: {label}")
        out.append(int(label))
    return out


def truncation(value: float | None, cutoff: int | None = None) -> dict[str, Any]:
    """The `truncation_psi` (and W+ `truncation_cutoff`) keywords of a request message (none
    when unset: ψ = 1 on every layer)."""
    found: dict[str, Any] = {} if value is None else {"truncation_psi": float(value)}
    if cutoff is not None:
        found["truncation_cutoff"] = uint(cutoff, "truncation_cutoff", 32)
    return found


NoiseArg = str | None
"""Noise of a decoder's noise inputs: "const", "seeded", "none" or None (the model's default)."""
_NOISE = {"const": pb.NOISE_MODE_CONST, "seeded": pb.NOISE_MODE_SEEDED,
          "none": pb.NOISE_MODE_NONE}


def noise(mode: NoiseArg, seed: int | None = None) -> pb.NoiseOptions | None:
    """The `noise` field of a request message (None when neither mode nor seed is given;
    a seed alone means seeded noise from that seed)."""
    if mode is None and seed is None:
        return None
    if mode is not None and mode not in _NOISE:
        raise ValueError(f"noise must be one of {sorted(_NOISE)} or None, got {mode!r}")
    options = pb.NoiseOptions(mode=_NOISE[mode or "seeded"])
    if seed is not None:
        options.seed = uint(seed, "noise_seed", 64)
    return options


def layer_range(layers: tuple[int, int] | Sequence[int] | None) -> pb.LayerRange | None:
    """The `layers` field of a request message: W+ layers [start, end) (None: unset)."""
    if layers is None:
        return None
    if isinstance(layers, str) or len(layers) != 2:
        raise ValueError(f"layers must be (start, end), got {layers!r}")
    start, end = (uint(v, "layers", 32) for v in layers)
    if start >= end:
        raise ValueError(f"layers must be (start, end) with start < end, got {tuple(layers)}")
    return pb.LayerRange(start=start, end=end)


def latent_source(
    seeds: Sequence[int] | None,
    latents: npt.ArrayLike | None,
    truncation_psi: float | None,
    truncation_cutoff: int | None = None,
) -> pb.LatentSource:
    """A LatentSource from exactly one of `seeds=` (with optional ψ and W+ cutoff) or
    `latents=` [k, D] or shaped [k, *shape] ([k, num_ws, w_dim] for W+)."""
    if (seeds is None) == (latents is None):
        raise ValueError("give exactly one of seeds= or latents=")
    if latents is not None:
        if truncation_psi is not None or truncation_cutoff is not None:
            raise ValueError("truncation_psi applies to seeds=, not to explicit latents= (and "
                             "so does truncation_cutoff)")
        return pb.LatentSource(latents=latent_tensor(latents, "latents"))
    assert seeds is not None
    checked = [uint(s, f"seeds[{i}]", 64) for i, s in enumerate(seeds)]
    return pb.LatentSource(seeds=pb.SeedList(seeds=checked,
                                             **truncation(truncation_psi, truncation_cutoff)))


def latent_tensor(latents: npt.ArrayLike, arg: str) -> pb.Tensor:
    """Latents [n, D] or shaped [n, ...] as a tensor (the service checks the shape)."""
    arr = np.asarray(latents)
    if arr.ndim < 2:
        raise ValueError(f"{arg} must be an [n, N] array (or shaped [n, ...]), got shape "
                         f"{arr.shape}")
    return to_tensor(arr, field=arg)


def _png_bytes(item: Any, i: int) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if hasattr(item, "save") and hasattr(item, "mode"):  # a PIL image
        return _images.pil_to_png(item)
    raise TypeError(f"images[{i}] must be PNG bytes or a PIL image, got {type(item).__name__}")


def image_input(images: ImagesArg) -> pb.Tensor | list[bytes]:
    """Encode input as sent: float arrays as one tensor, uint8 arrays, PNG bytes and PIL
    images as one PNG each."""
    if isinstance(images, bytes | bytearray | memoryview):
        images = [images]
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"images must be an [n, C, H, W] array, got shape {images.shape}")
        if images.dtype == np.uint8:
            return _images.array_to_pngs(images)
        return to_tensor(images, field="images")
    return [_png_bytes(item, i) for i, item in enumerate(images)]
