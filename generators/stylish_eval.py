"""Layer-range measures of a W+ generator of stylish shapes, judged on its images by
`stylish_measures`: do coarse-layer edits move geometry without colour, fine-layer edits
colour without geometry, and does style mixing take geometry from the row seed and
appearance from the column seed? The caller says how to decode W+ codes (torch,
onnxruntime or the service's Decode RPC), so the same numbers can be re-measured anywhere::

    result = evaluate_layers(decode, bases, directions, rows=row_ws, cols=col_ws)
    result.metrics["layers.scale.colour_leak_reduction"]      # ≥ 0.5 wanted
    result.quality["object_hue"]                               # DirectionQualitySpec

`decode` takes ws float32 [n, L, w_dim] and returns images [n, 3, 64, 64] in [0, 1]. Edits
add strength · σ · d to the layers [start, end) only, as the service's Edit does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from latentserve.core.arrays import F32, F64
from latentserve.core.latent_ops import orthogonalize
from latentserve.generators.stylish_measures import (
    APPEARANCE_MEASURES,
    GEOMETRY_MEASURES,
    MEASURE_OF,
    PERIODS,
    RESOLUTION,
    circular_diff,
    measure_shapes,
    shapes_measured,
)
from latentserve.registry.bundle.spec import DirectionQualitySpec
from latentserve.registry.quality.latent_eval import STRENGTHS, direction_quality, spearman

Decode = Callable[[F32], F32]
"""ws float32 [n, L, w_dim] → images float32 [n, 3, 64, 64] in [0, 1]."""
COLOUR_MEASURES: tuple[str, ...] = ("object_hue", "background_hue")
LEAK_REDUCTION_MIN = 0.5
"""Coarse-only edits of a geometry direction should cut colour leakage by at least this."""
GEOMETRY_RHO_MAX = 0.2
"""Fine-only edits should leave every geometry measure's within-seed ρ below this …"""
HUE_RHO_MIN = 0.95
"""… while a hue direction's within-seed ρ reaches this."""


@dataclass(frozen=True)
class LayerDirection:
    """A direction of W (unit [w_dim]) with its σ and default layer range [start, end)."""

    name: str
    vector: F32
    sigma: float
    layers: tuple[int, int]
    geometry: bool
    """True for coarse factors (shape, scale, orientation, position)."""


@dataclass(frozen=True)
class LayerEvaluation:
    """Bundle metrics (with notes) and each direction's quality at its default layers."""

    metrics: dict[str, float]
    notes: dict[str, str]
    quality: dict[str, DirectionQualitySpec]


def edit_ws(bases: F32, vector: F32, sigma: float, strengths: Sequence[float],
            layers: tuple[int, int]) -> F32:  # fmt: skip
    """Rows b·S + s: bases[b] with strengths[s]·σ·d added to layers [start, end)."""
    steps = np.asarray(strengths, np.float64)[None, :, None, None] * sigma
    delta = np.zeros(bases.shape[1:], np.float64)
    delta[layers[0]:layers[1]] = vector
    rows = bases[:, None].astype(np.float64) + steps * delta[None, None]
    return rows.reshape(-1, *bases.shape[1:]).astype(np.float32)


def mix_ws(rows: F32, cols: F32, layers: tuple[int, int]) -> F32:
    """Row-major grid r·C + c: rows[r] with layers [start, end) from cols[c]."""
    out = np.repeat(rows[:, None], len(cols), axis=1).copy()
    out[:, :, layers[0]:layers[1]] = cols[None, :, layers[0]:layers[1]]
    return out.reshape(-1, *rows.shape[1:])


class _Sweeps:
    """Edit images of plain and conditional sweeps, kept for the layer metrics."""

    def __init__(self, decode: Decode, bases: F32, directions: Mapping[str, LayerDirection],
                 strengths: Sequence[float], layers: tuple[int, int] | None):  # fmt: skip
        self.decode, self.bases, self.directions = decode, bases, directions
        self.strengths, self.layers = list(strengths), layers
        self.plain: dict[str, dict[str, F64]] = {}

    def edit(self, name: str, strengths: Sequence[float], conditional_on: Sequence[str]) -> F32:
        d = self.directions[name]
        vector = d.vector if not conditional_on else orthogonalize(
            d.vector, [self.directions[o].vector for o in conditional_on])
        layers = self.layers or d.layers
        images = self.decode(edit_ws(self.bases, vector, d.sigma, strengths, layers))
        images = np.asarray(images, np.float32).reshape(len(self.bases), len(strengths),
                                                        *images.shape[1:])  # fmt: skip
        if not conditional_on:
            measured = measure_shapes(images.reshape(-1, *images.shape[2:]))
            self.plain[name] = {k: v.reshape(len(self.bases), -1) for k, v in measured.items()}
        return images


def _quality(decode: Decode, bases: F32, directions: Mapping[str, LayerDirection],
             layers: tuple[int, int] | None,
             strengths: Sequence[float]) -> tuple[dict[str, DirectionQualitySpec], _Sweeps]:
    sweeps = _Sweeps(decode, bases, directions, strengths, layers)
    own = {name: MEASURE_OF[name] for name in directions}
    found = direction_quality(sweeps.edit, shapes_measured, own, strengths=strengths)
    out = {}
    for name, q in found.items():
        span = layers or directions[name].layers
        out[name] = DirectionQualitySpec.model_validate(
            q.spec().model_dump() | {"layers": (span[0], span[1])})
    return out, sweeps


def _change(grid: F64, measure: str, zero: int) -> F64:
    """|change| of a measure from each base's unedited image [B, S] (circular-aware)."""
    if measure in PERIODS:
        return np.abs(circular_diff(grid, grid[:, zero:zero + 1], PERIODS[measure]))
    return np.abs(grid - grid[:, zero:zero + 1])


def _unwrapped(grid: F64, measure: str) -> F64:
    if measure not in PERIODS:
        return grid
    p = PERIODS[measure]
    return np.unwrap(grid * (2 * math.pi / p), axis=1) * (p / (2 * math.pi))


def _settled(grid: F64, measure: str, zero: int) -> F64:
    """The sweep with changes below the measure's RESOLUTION set to the base value."""
    delta = grid - grid[:, zero:zero + 1]
    return np.where(np.abs(delta) < RESOLUTION[measure], grid[:, zero:zero + 1], grid)


def _within_rhos(grid: F64, strengths: Sequence[float]) -> F64:
    s = np.asarray(strengths, np.float64)
    rhos = [spearman(s, row) if np.ptp(row) > 0 else 0.0 for row in grid]
    return np.nan_to_num(np.asarray(rhos, np.float64))


def _circular_corr(a: F64, b: F64, period: float) -> float:
    """Fisher–Lee circular correlation of two samples of angles with `period`."""
    ra, rb = np.asarray(a) * 2 * math.pi / period, np.asarray(b) * 2 * math.pi / period
    ma = math.atan2(float(np.sin(ra).mean()), float(np.cos(ra).mean()))
    mb = math.atan2(float(np.sin(rb).mean()), float(np.cos(rb).mean()))
    sa, sb = np.sin(ra - ma), np.sin(rb - mb)
    return float((sa * sb).sum() / math.sqrt(float((sa**2).sum() * (sb**2).sum())))


def _corr(a: F64, b: F64, measure: str) -> float:
    if measure in PERIODS:
        return _circular_corr(a, b, PERIODS[measure])
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_layers(
    decode: Decode,
    bases: F32,
    directions: Sequence[LayerDirection],
    *,
    rows: F32,
    cols: F32,
    fine: tuple[int, int],
    strengths: Sequence[float] = STRENGTHS,
) -> LayerEvaluation:
    """Direction quality at each direction's default layers and at all layers, the layer-range
    targets, and style-mixing correlations (rows × cols, `fine` layers from the column)."""
    num_ws = bases.shape[1]
    by_name = {d.name: d for d in directions}
    zero = int(np.argmin(np.abs(np.asarray(strengths))))
    quality, default = _quality(decode, bases, by_name, None, strengths)
    quality_all, everywhere = _quality(decode, bases, by_name, (0, num_ws), strengths)
    metrics: dict[str, float] = {}
    notes: dict[str, str] = {}
    sweep = f"{len(bases)} bases, strengths {strengths[0]:g}…{strengths[-1]:g}"
    for name, d in by_name.items():
        p = f"layers.{name}."
        for tag, q in (("default", quality[name]), ("all", quality_all[name])):
            metrics[p + f"{tag}.spearman_within"] = q.spearman_within
            metrics[p + f"{tag}.spearman_pooled"] = q.spearman_pooled
        notes[p + "default.spearman_within"] = (
            f"mean per-base Spearman ρ of strength vs {MEASURE_OF[name]} for edits of layers "
            f"[{d.layers[0]}, {d.layers[1]}) ({sweep}); .all: the same edits on every layer")
        if d.geometry:
            own = MEASURE_OF[name]
            leaks = {}
            for tag, sw in (("coarse", default), ("all", everywhere)):
                moved = float(_change(sw.plain[name][own], own, zero).mean())
                colour = sum(float(_change(sw.plain[name][c], c, zero).mean()) * 360.0
                             for c in COLOUR_MEASURES)  # fmt: skip
                leaks[tag] = colour / max(moved, 1e-9)
                metrics[p + f"{tag}.geometry_change"] = moved
                metrics[p + f"{tag}.colour_change_deg"] = colour
            metrics[p + "colour_leak_reduction"] = (
                1.0 - leaks["coarse"] / leaks["all"] if leaks["all"] > 0 else 0.0)
            notes[p + "colour_leak_reduction"] = (
                "1 − (colour change per unit of geometric change of a coarse-only edit) / (the "
                f"same for an all-layer edit); colour change = mean |Δ object hue| + |Δ "
                f"background hue| in degrees, geometric change = mean |Δ {own}| ({sweep}); "
                f"target ≥ {LEAK_REDUCTION_MIN}")
        else:
            for tag, sw in (("fine", default), ("all", everywhere)):
                grids = {g: _settled(_unwrapped(sw.plain[name][g], g), g, zero)
                         for g in GEOMETRY_MEASURES}  # fmt: skip
                rhos = {g: _within_rhos(grid, strengths) for g, grid in grids.items()}
                metrics[p + f"{tag}.geometry_rho_max"] = max(abs(float(r.mean()))
                                                             for r in rhos.values())
                metrics[p + f"{tag}.geometry_abs_rho_mean"] = max(float(np.abs(r).mean())
                                                                  for r in rhos.values())
                metrics[p + f"{tag}.size_change_px"] = float(
                    _change(sw.plain[name]["size"], "size", zero).mean())
            notes[p + "fine.geometry_rho_max"] = (
                "largest |mean per-base Spearman ρ| of strength vs a geometry measure (size, "
                f"position, orientation, squareness) for edits of layers [{d.layers[0]}, "
                f"{d.layers[1]}) ({sweep}), changes below the measure's resolution counting as "
                f"none; target ≤ {GEOMETRY_RHO_MAX}; .geometry_abs_rho_mean: the largest mean "
                "per-base |ρ|; .size_change_px: mean |Δ size| in pixels; .all: every layer")
    metrics |= _mixing(decode, rows, cols, fine)
    notes["mix.geometry_from_row_min"] = (
        f"style mixing, {len(rows)} row × {len(cols)} column seeds, layers [{fine[0]}, "
        f"{fine[1]}) from the column: the smallest correlation of a geometry measure of the "
        "mixed image with the row seed's (circular correlation for orientation); "
        "mix.appearance_from_col_min: the same for appearance measures with the column seed's; "
        "mix.<measure>.from_row / from_col: each correlation")
    return LayerEvaluation(metrics, notes, quality)


def _mixing(decode: Decode, rows: F32, cols: F32, fine: tuple[int, int]) -> dict[str, float]:
    r, c = len(rows), len(cols)
    m_rows = measure_shapes(decode(rows))
    m_cols = measure_shapes(decode(cols))
    m_mix = measure_shapes(decode(mix_ws(rows, cols, fine)))
    out: dict[str, float] = {}
    for measure in (*GEOMETRY_MEASURES, *APPEARANCE_MEASURES):
        from_row = np.repeat(m_rows[measure], c)
        from_col = np.tile(m_cols[measure], r)
        out[f"mix.{measure}.from_row"] = _corr(m_mix[measure], from_row, measure)
        out[f"mix.{measure}.from_col"] = _corr(m_mix[measure], from_col, measure)
    out["mix.geometry_from_row_min"] = min(out[f"mix.{g}.from_row"] for g in GEOMETRY_MEASURES)
    out["mix.appearance_from_col_min"] = min(out[f"mix.{a}.from_col"]
                                             for a in APPEARANCE_MEASURES)
    return out
