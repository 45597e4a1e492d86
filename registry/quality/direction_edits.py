"""Tidying a bundle's directions after discovery: flip a sign, rename, remove, and find the
duplicates different methods find (PCA and SeFa of one model often agree to |cos| 0.95+).

Every change rewrites the bundle through `write_bundle` (validated, never half-written) and
carries the direction's measured quality and `direction.<name>.*` metrics along: a flip
negates the Spearman ρs (the sweep −3…3 σ is symmetric, so a flipped direction's ρ is exactly
−ρ and its leakage unchanged), a rename renames them, a removal or an orthogonalisation drops
them (the vector they measured is gone). Example::

    flip(Path("b"), ["pc0"])
    cos = cosine_matrix(load_bundle(Path("b")))           # names, |cos| [n, n]
    report = dedupe(Path("b"), max_cos=0.9, mode="drop")  # report.dropped == ["sefa0"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from latentserve.core.arrays import F32, F64
from latentserve.core.seeding import sample_latents
from latentserve.registry.bundle.files import Bundle, load_bundle, write_bundle
from latentserve.registry.bundle.spec import (
    PREVIEW_FILE,
    BundleError,
    BundleSpec,
    DirectionQualitySpec,
    DirectionSpec,
)
from latentserve.registry.quality.direction_fits import sigma_along

SIGMA_SAMPLES = 4096
"""Prior samples (Sample seed 0; mapped to W for two-stage bundles) that give an
orthogonalised direction its new σ."""
DedupeMode = Literal["drop", "orthogonalize"]


def _prefix(name: str) -> str:
    return f"direction.{name}."


def _rewrite(bundle: Bundle, directions: Sequence[DirectionSpec],
             vectors: Mapping[str, tuple[F32, float]], metrics: Mapping[str, float],
             notes: Mapping[str, str]) -> Bundle:
    spec = bundle.spec.model_copy(update={"directions": list(directions),
                                          "metrics": dict(metrics),
                                          "metric_notes": dict(notes)})
    preview = bundle.root / PREVIEW_FILE
    return write_bundle(bundle.root, BundleSpec.parse(spec.model_dump(mode="json")),
                        decoder=bundle.decoder_path, mapping=bundle.mapping_path,
                        encoder=bundle.encoder_path, directions=vectors,
                        preview_png=preview.read_bytes() if preview.is_file() else None)


def _vectors(bundle: Bundle) -> dict[str, tuple[F32, float]]:
    return {name: (d.vector, d.sigma) for name, d in bundle.directions.items()}


def _known(bundle: Bundle, names: Sequence[str]) -> None:
    if not names:
        raise BundleError("names: name at least one direction")
    unknown = [n for n in names if n not in bundle.directions]
    if unknown:
        raise BundleError(f"name: the bundle has no direction {unknown[0]!r} (it has: "
                          f"{', '.join(bundle.directions) or 'none'})")


def _metrics_of(spec: BundleSpec, keep: Callable[[str], str | None]
                ) -> tuple[dict[str, float], dict[str, str]]:
    """Direction metrics and notes renamed by `keep` (key → new key, None: dropped)."""
    metrics: dict[str, float] = {}
    notes: dict[str, str] = {}
    for key, value in spec.metrics.items():
        new = keep(key)
        if new is not None:
            metrics[new] = value
    for key, text in spec.metric_notes.items():
        new = keep(key)
        if new is not None:
            notes[new] = text
    return metrics, notes


def flip(root: Path, names: Sequence[str], *, why: Mapping[str, str] | None = None) -> Bundle:
    """Negate each named direction (so + moves the other way); its quality follows. `why`
    (name → reason) is added to the direction's unit text."""
    bundle = load_bundle(root)
    _known(bundle, names)
    vectors = _vectors(bundle)
    flipped = set(names)
    entries = []
    for d in bundle.spec.directions:
        if d.name in flipped:
            vectors[d.name] = (-vectors[d.name][0], vectors[d.name][1])
            reason = (why or {}).get(d.name, "")
            d = d.model_copy(update={"quality": flipped_quality(d.quality), "unit": (
                f"{d.unit} (sign flipped{': ' + reason if reason else ''})")})
        entries.append(d)
    metrics = dict(bundle.spec.metrics)
    for name in flipped:
        for what in ("spearman_within", "spearman_pooled"):
            key = _prefix(name) + what
            if key in metrics:
                metrics[key] = -metrics[key]
    return _rewrite(bundle, entries, vectors, metrics, bundle.spec.metric_notes)


def flipped_quality(quality: DirectionQualitySpec | None) -> DirectionQualitySpec | None:
    """The quality of the negated direction: both ρs negated, leakage as it was."""
    if quality is None:
        return None
    within, pooled = -quality.spearman_within, -quality.spearman_pooled
    return quality.model_copy(update={"spearman_within": within, "spearman_pooled": pooled,
                                      "reliable": within >= 0.95 and pooled >= 0.9})


def set_factors(root: Path, factors: Mapping[str, str]) -> Bundle:
    """Set the `factor` (the measure evaluations score it on) of the named directions."""
    bundle = load_bundle(root)
    _known(bundle, list(factors))
    entries = [d.model_copy(update={"factor": factors[d.name]}) if d.name in factors else d
               for d in bundle.spec.directions]
    return _rewrite(bundle, entries, _vectors(bundle), bundle.spec.metrics,
                    bundle.spec.metric_notes)


def rename(root: Path, old: str, new: str) -> Bundle:
    """Rename a direction (its vector, σ, quality and metrics)."""
    bundle = load_bundle(root)
    _known(bundle, [old])
    if new in bundle.directions:
        raise BundleError(f"name: the bundle already has a direction {new!r}")
    try:
        entries = [d.model_copy(update={"name": new}) if d.name == old else d
                   for d in bundle.spec.directions]
        DirectionSpec.model_validate(entries[[d.name for d in entries].index(new)].model_dump())
    except ValueError:
        raise BundleError(f"name: {new!r} may use only letters, digits, '_', '.' and "
                          "'-'") from None
    vectors = {new if k == old else k: v for k, v in _vectors(bundle).items()}
    metrics, notes = _metrics_of(bundle.spec, lambda key: _prefix(new) + key[len(_prefix(old)):]
                                 if key.startswith(_prefix(old)) else key)
    return _rewrite(bundle, entries, vectors, metrics, notes)


def remove(root: Path, names: Sequence[str]) -> Bundle:
    """Remove the named directions (and their metrics)."""
    bundle = load_bundle(root)
    _known(bundle, names)
    gone = set(names)
    vectors = {k: v for k, v in _vectors(bundle).items() if k not in gone}
    entries = [d for d in bundle.spec.directions if d.name not in gone]
    metrics, notes = _metrics_of(bundle.spec, lambda key: None if any(
        key.startswith(_prefix(n)) for n in gone) else key)
    return _rewrite(bundle, entries, vectors, metrics, notes)


def cosine_matrix(bundle: Bundle) -> tuple[list[str], F64]:
    """Direction names (bundle order) and |cos| between every pair [n, n]."""
    names = [d.name for d in bundle.spec.directions]
    if not names:
        return names, np.zeros((0, 0))
    stacked = np.stack([bundle.directions[n].vector.astype(np.float64) for n in names])
    stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
    out: F64 = np.abs(stacked @ stacked.T)
    return names, out


@dataclass
class DedupeReport:
    """What `dedupe` found and did: each duplicate with the earlier direction it matched."""

    names: list[str]
    cosines: F64
    matched: dict[str, tuple[str, float]] = field(default_factory=dict)
    """later direction → (the earlier one it duplicates, |cos|)."""
    dropped: list[str] = field(default_factory=list)
    orthogonalized: list[str] = field(default_factory=list)


def dedupe(root: Path, max_cos: float, mode: DedupeMode = "drop", *,
           dry_run: bool = False) -> DedupeReport:
    """Directions (in bundle order) whose |cos| with an earlier kept one exceeds `max_cos`
    are dropped, or orthogonalised against every earlier kept direction (renormalised, σ
    measured again on prior samples, quality dropped: it measured the old vector)."""
    if not 0.0 < max_cos < 1.0:
        raise BundleError(f"max_cos: must be in (0, 1), got {max_cos}")
    bundle = load_bundle(root)
    names, cosines = cosine_matrix(bundle)
    report = DedupeReport(names, cosines)
    kept: list[str] = []
    vectors = _vectors(bundle)
    for i, name in enumerate(names):
        worst = max(((cosines[i, names.index(k)], k) for k in kept), default=(0.0, ""))
        if worst[0] <= max_cos:
            kept.append(name)
            continue
        report.matched[name] = (worst[1], float(worst[0]))
        if mode == "drop":
            report.dropped.append(name)
            continue
        basis = np.stack([vectors[k][0].astype(np.float64) for k in kept])
        q, _ = np.linalg.qr(basis.T)
        v = vectors[name][0].astype(np.float64)
        rest = v - q @ (q.T @ v)
        if np.linalg.norm(rest) < 1e-6:
            report.dropped.append(name)        # nothing left of it: a pure duplicate
            continue
        unit = rest / np.linalg.norm(rest)
        vectors[name] = (unit.astype(np.float32), sigma_along(_editing_samples(bundle), unit))
        report.orthogonalized.append(name)
        kept.append(name)
    if dry_run or not report.matched:
        return report
    gone = set(report.dropped)
    changed = set(report.orthogonalized)
    entries = []
    for d in bundle.spec.directions:
        if d.name in gone:
            continue
        if d.name in changed:
            d = d.model_copy(update={"quality": None, "unit": (
                f"1.0 = 1 σ of prior latents along the direction (orthogonalised against "
                f"{', '.join(kept[: kept.index(d.name)])}; was: {d.unit})")})
        entries.append(d)
    metrics, notes = _metrics_of(bundle.spec, lambda key: None if any(
        key.startswith(_prefix(n)) for n in gone | changed) else key)
    _rewrite(bundle, entries, {k: v for k, v in vectors.items() if k not in gone}, metrics,
             notes)
    return report


def _editing_samples(bundle: Bundle) -> F64:
    """Prior samples in the editing space (one w per sample for W+), for σ."""
    spec = bundle.spec
    if spec.mapping is None:
        prior = getattr(spec, "prior", None)
        scale, mean = float(getattr(prior, "scale", 1.0)), float(getattr(prior, "mean", 0.0))
        z: F64 = mean + scale * sample_latents(0, SIGMA_SAMPLES, spec.latent_dim).astype(
            np.float64)
        return z
    from latentserve.registry.quality.discovery import mapped_prior

    return mapped_prior(bundle, SIGMA_SAMPLES)


def format_matrix(names: Sequence[str], cosines: F64) -> list[str]:
    """The |cos| matrix as aligned text lines (a header, then one row per direction)."""
    width = max([len(n) for n in names] + [4])
    lines = [" " * width + " " + " ".join(f"{n[:6]:>6}" for n in names)]
    for i, n in enumerate(names):
        lines.append(f"{n:<{width}} " + " ".join(f"{cosines[i, j]:6.3f}"
                                                for j in range(len(names))))
    return lines
