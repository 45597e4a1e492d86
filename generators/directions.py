"""Latent direction discovery: supervised (InterFaceGAN), PCA (GANSpace) and SeFa.

Every method returns unit vectors plus σ, the latent distance that strength 1.0 means (the
std of encoded latents projected on the direction). Example::

    d = supervised_direction("scale", mu, scale_values, factor="scale")
    pcs = pca_directions(mu, k=4)                  # sorted by explained variance
    sefa = sefa_directions(A, k=4, latents=mu)     # A: first decoder linear weight [out, N]
    write_bundle(..., directions=as_arrays([d, *pcs, *sefa]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression, Ridge

from latentserve.core.arrays import F32, F64
from latentserve.registry.bundle.spec import DirectionSpec

_MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class FoundDirection:
    """A discovered direction: unit vector, σ, how it was found and a quality score."""

    name: str
    vector: F32
    sigma: float
    method: Literal["supervised", "pca", "sefa"]
    unit: str
    factor: str | None = None
    score: float = math.nan
    """R² (regression), held-out accuracy (classification), explained variance ratio (PCA)
    or eigenvalue of AᵀA (SeFa)."""
    target: str | None = None
    """For supervised directions: the quantity the linear model predicted."""
    score_name: str = ""
    """What `score` is, e.g. "held-out R²"."""

    def spec(self) -> DirectionSpec:
        """The `latentserve.json` entry of this direction."""
        return DirectionSpec(name=self.name, method=self.method, unit=self.unit, factor=self.factor)


def as_arrays(found: Sequence[FoundDirection]) -> dict[str, tuple[F32, float]]:
    """name → (unit vector, σ), the form `write_bundle(directions=...)` takes."""
    return {d.name: (d.vector, d.sigma) for d in found}


def fit_metrics(found: Sequence[FoundDirection]) -> tuple[dict[str, float], dict[str, str]]:
    """`direction_fit_<name>` = held-out score of each supervised direction's linear model."""
    metrics, notes = {}, {}
    for d in found:
        if d.method == "supervised" and math.isfinite(d.score):
            metrics[f"direction_fit_{d.name}"] = d.score
            notes[f"direction_fit_{d.name}"] = (
                f"{d.score_name} of the linear model whose normal is the {d.name} direction "
                f"(target {d.target})"
            )
    return metrics, notes


def supervised_direction(
    name: str,
    latents: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    kind: Literal["regression", "classification"] = "regression",
    factor: str | None = None,
    meaning: str = "",
    target_name: str | None = None,
    latents_are: str = "encoded latents",
    seed: int = 0,
) -> FoundDirection:
    """Normal of a linear model fitted from latents [M, N] to a factor [M] (InterFaceGAN).

    Regression (ridge) for continuous factors, logistic regression for a 0/1 target
    (one-vs-rest). The vector points towards larger values / the positive class; the score
    is R² / accuracy on a held-out fifth of the data.
    """
    z = _latents(latents, "latents")
    y = np.asarray(target, dtype=np.float64)
    if y.shape != (z.shape[0],):
        raise ValueError(f"{name}: target has shape {y.shape}, expected ({z.shape[0]},)")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: target has non-finite values")
    if np.ptp(y) == 0:
        raise ValueError(f"{name}: target is constant, no direction to find")
    perm = np.random.default_rng(seed).permutation(len(y))
    cut = max(1, len(y) // 5)
    test, train = perm[:cut], perm[cut:]
    if kind == "regression":
        reg = Ridge(alpha=1.0).fit(z[train], y[train])
        score = float(reg.score(z[test], y[test]))
        reg = Ridge(alpha=1.0).fit(z, y)
        normal = np.asarray(reg.coef_, np.float64)
    else:
        if set(np.unique(y)) - {0.0, 1.0}:
            raise ValueError(f"{name}: a classification target must be 0/1")
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(z[train], y[train])
        score = float(clf.score(z[test], y[test]))
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(z, y)
        normal = np.asarray(clf.coef_[0], np.float64)
    unit = _unit(normal, name)
    sigma = _sigma(z, unit)
    what = f"; positive = {meaning}" if meaning else ""
    text = (
        f"1.0 = 1 σ of {latents_are} projected on the direction (σ = {sigma:.4g} latent "
        f"units){what}"
    )
    score_name = (
        "held-out R²"
        if kind == "regression"
        else (f"held-out accuracy (majority baseline {max(y.mean(), 1 - y.mean()):.3f})")
    )
    return FoundDirection(
        name, unit.astype(np.float32), sigma, "supervised", text, factor, score,
        target_name or name, score_name,
    )  # fmt: skip


def pca_directions(latents: npt.ArrayLike, k: int, *, prefix: str = "pc") -> list[FoundDirection]:
    """The top-k principal components of latents [M, N] (GANSpace), by explained variance.

    σ is the std of the latents' projection (√eigenvalue); each vector's largest-magnitude
    entry is made positive so results are reproducible.
    """
    z = _latents(latents, "latents")
    _check_k(k, z.shape[1])
    centred = z - z.mean(axis=0)
    cov = centred.T @ centred / max(len(z) - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:k]
    total = float(values.sum())
    found = []
    for rank, i in enumerate(order):
        unit = _canonical_sign(vectors[:, i])
        sigma = max(math.sqrt(max(float(values[i]), 0.0)), _MIN_SIGMA)
        ratio = float(values[i]) / total if total > 0 else 0.0
        text = (
            f"1.0 = 1 σ of encoded latents along principal component {rank} (σ = {sigma:.4g} "
            f"latent units; {100 * ratio:.1f}% of latent variance)"
        )
        found.append(
            FoundDirection(
                f"{prefix}{rank}", unit.astype(np.float32), sigma, "pca", text, None, ratio
            )
        )
    return found


def sefa_directions(
    weight: npt.ArrayLike, k: int, *, latents: npt.ArrayLike | None = None, prefix: str = "sefa"
) -> list[FoundDirection]:
    """SeFa: eigenvectors of AᵀA for the decoder's first linear weight A [out, N].

    Sorted explicitly by eigenvalue, largest first. σ is the std of `latents` projected on
    the direction (1.0, the prior's σ, when no latents are given).
    """
    a = np.asarray(weight, dtype=np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"weight: expected a finite [out, N] matrix, got shape {a.shape}")
    _check_k(k, a.shape[1])
    z = None if latents is None else _latents(latents, "latents")
    if z is not None and z.shape[1] != a.shape[1]:
        raise ValueError(f"latents have {z.shape[1]} dims, weight has {a.shape[1]} columns")
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(values)[::-1][:k]
    found = []
    for rank, i in enumerate(order):
        unit = _canonical_sign(vectors[:, i])
        sigma = 1.0 if z is None else _sigma(z, unit)
        basis = "prior" if z is None else "encoded latents"
        text = (
            f"1.0 = 1 σ of {basis} along SeFa direction {rank} (σ = {sigma:.4g} latent units; "
            f"eigenvalue {float(values[i]):.4g} of AᵀA)"
        )
        found.append(
            FoundDirection(
                f"{prefix}{rank}",
                unit.astype(np.float32),
                sigma,
                "sefa",
                text,
                None,
                float(values[i]),
            )
        )
    return found


def _latents(latents: npt.ArrayLike, what: str) -> F64:
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"{what}: expected [M, N] with M >= 2, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{what}: contains non-finite values")
    return z


def _check_k(k: int, dim: int) -> None:
    if not 1 <= k <= dim:
        raise ValueError(f"k must be in 1..{dim}, got {k}")


def _unit(v: F64, name: str) -> F64:
    norm = float(np.linalg.norm(v))
    if not math.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"{name}: the fitted normal is zero; the target is not linear in z")
    return v / norm


def _canonical_sign(v: F64) -> F64:
    unit = v / np.linalg.norm(v)
    return unit if unit[np.argmax(np.abs(unit))] > 0 else -unit


def _sigma(z: F64, unit: F64) -> float:
    return max(float(np.std(z @ unit)), _MIN_SIGMA)
