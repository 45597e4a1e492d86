"""Change a bundle in place: add (or replace) directions, record metrics and direction
quality. The bundle is rewritten through `write_bundle`, so it is validated again and never
left half-written. Example::

    add_directions(Path("out/my-vae"), [(spec_entry, unit_vector, sigma)], replace=False)
    record_metrics(Path("out/my-vae"), {"path_max_step_ratio_lerp": 1.2}, notes={...})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32
from latentserve.registry.bundle.files import Bundle, load_bundle, write_bundle
from latentserve.registry.bundle.spec import (
    PREVIEW_FILE,
    BundleError,
    BundleSpec,
    DirectionQualitySpec,
    DirectionSpec,
)

USER_UNIT = "1.0 = 1 σ of prior latents along d (a user-supplied vector, unit-normalised)"


def _rewrite(bundle: Bundle, spec: BundleSpec,
             directions: Mapping[str, tuple[F32, float]]) -> Bundle:
    root = bundle.root
    preview = root / PREVIEW_FILE
    return write_bundle(
        root, spec, decoder=bundle.decoder_path, mapping=bundle.mapping_path,
        encoder=bundle.encoder_path,
        directions=directions,
        preview_png=preview.read_bytes() if preview.is_file() else None)


def _existing(bundle: Bundle) -> dict[str, tuple[F32, float]]:
    return {name: (d.vector, d.sigma) for name, d in bundle.directions.items()}


def add_directions(root: Path, found: Sequence[tuple[DirectionSpec, npt.ArrayLike, float]], *,
                   replace: bool = False) -> Bundle:
    """Add directions (spec entry, vector [N], σ) to the bundle in `root`.

    A name already in the bundle is an error unless `replace`; vectors are checked (length,
    finite, non-zero) and unit-normalised.
    """
    bundle = load_bundle(root)
    spec = bundle.spec
    vectors = _existing(bundle)
    entries = {d.name: d for d in spec.directions}
    for entry, vector, sigma in found:
        if entry.name in entries and not replace:
            raise BundleError(f"name: the bundle already has a direction {entry.name!r} "
                              "(replace it with --replace)")
        vectors[entry.name] = (unit_vector(vector, spec.editing_dim, entry.name), float(sigma))
        if not (np.isfinite(sigma) and sigma > 0):
            raise BundleError(f"sigma: must be finite and > 0 for {entry.name!r}, got {sigma}")
        entries[entry.name] = entry
    new = spec.model_copy(update={"directions": list(entries.values())})
    return _rewrite(bundle, BundleSpec.parse(new.model_dump(mode="json")), vectors)


def unit_vector(vector: npt.ArrayLike, latent_dim: int, name: str) -> F32:
    """A direction vector of shape [N] or [1, N], checked and normalised to unit length."""
    v = np.asarray(vector)
    if v.dtype.kind not in "fiu":
        raise BundleError(f"vector: {name!r} must hold numbers, got dtype {v.dtype}")
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.shape != (latent_dim,):
        raise BundleError(f"vector: {name!r} has shape {list(np.shape(vector))}; the latent "
                          f"size is {latent_dim} (expected [{latent_dim}] or [1, {latent_dim}]; "
                          "W codes for a two-stage bundle)")
    v64 = v.astype(np.float64)
    if not np.all(np.isfinite(v64)):
        raise BundleError(f"vector: {name!r} has non-finite values")
    norm = float(np.linalg.norm(v64))
    if norm < 1e-12:
        raise BundleError(f"vector: {name!r} is zero")
    out: F32 = (v64 / norm).astype(np.float32)
    return out


def record_metrics(root: Path, metrics: Mapping[str, float], *,
                   notes: Mapping[str, str] | None = None,
                   quality: Mapping[str, DirectionQualitySpec] | None = None) -> Bundle:
    """Merge `metrics` (and their notes) into the spec's metrics and set each named
    direction's `quality`; other metrics and directions are kept."""
    bundle = load_bundle(root)
    spec = bundle.spec
    quality = dict(quality or {})
    unknown = sorted(set(quality) - {d.name for d in spec.directions})
    if unknown:
        raise BundleError(f"quality: the bundle has no direction {unknown[0]!r}")
    directions = [d.model_copy(update={"quality": quality[d.name]}) if d.name in quality else d
                  for d in spec.directions]  # fmt: skip
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        raise BundleError(f"metrics: {bad[0]!r} is not finite")
    new = spec.model_copy(update={
        "metrics": {**spec.metrics, **{k: float(v) for k, v in metrics.items()}},
        "metric_notes": {**spec.metric_notes, **dict(notes or {})},
        "directions": directions,
    })
    return _rewrite(bundle, BundleSpec.parse(new.model_dump(mode="json")), _existing(bundle))
