"""Direction finding on given arrays, in numpy — the one implementation of each method, used by
`discovery` on a bundle's ONNX files and by the shipped generators' training runs:

- `sefa_from_matrix`: SeFa (Shen & Zhou 2021), the top eigenvectors of AᵀA for a weight A;
- `pca_of_latents`: PCA of latent codes; `pca_of_activations`: GANSpace (Härkönen et al. 2020),
  PCA of decoder activations regressed back onto the latents;
- `supervised`: InterFaceGAN, the normal of a linear model from latents to each label
  (logistic regression by IRLS for two-valued labels, ridge least squares otherwise).

Every direction is a unit vector with a deterministic sign (its largest-magnitude entry
positive for SeFa/PCA; towards larger labels for supervised) and σ, the std of the latents'
projection on it, so strength 1.0 is 1 σ of latent codes along d. Example::

    found = pca_of_latents(mu, k=4, what="encoded latents")
    found += supervised(mu, {"thickness": ink}, what="encoded digits")
    write_bundle(..., directions=as_arrays(found))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64
from latentserve.registry.bundle.spec import BundleError, DirectionSpec

RIDGE = 1e-3
"""Default L2 penalty of the supervised fits, × the number of samples."""
_MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class Discovered:
    """One found direction, ready for the bundle: unit vector, σ and its spec entry."""

    name: str
    vector: F32
    sigma: float
    method: Literal["supervised", "pca", "sefa"]
    unit: str
    score: float
    """Eigenvalue of AᵀA (sefa), explained-variance ratio (pca), held-out accuracy or R²
    (supervised)."""
    score_name: str
    factor: str | None = None
    """The factor it moves (names the measure an evaluation scores it on)."""
    layers: tuple[int, int] | None = None
    """W+: the default layer range [start, end) (None: all layers)."""

    def spec(self) -> DirectionSpec:
        """The `latentserve.json` entry."""
        entry = DirectionSpec(name=self.name, method=self.method, unit=self.unit,
                              factor=self.factor)
        return entry if self.layers is None else entry.model_copy(update={"layers": self.layers})


def as_arrays(found: Sequence[Discovered]) -> dict[str, tuple[F32, float]]:
    """name → (unit vector, σ), the form `write_bundle(directions=...)` takes."""
    return {d.name: (d.vector, d.sigma) for d in found}


def fit_metrics(found: Sequence[Discovered]) -> tuple[dict[str, float], dict[str, str]]:
    """`direction_fit_<name>` = held-out score of each supervised direction's linear model."""
    metrics, notes = {}, {}
    for d in found:
        if d.method == "supervised" and math.isfinite(d.score):
            metrics[f"direction_fit_{d.name}"] = d.score
            notes[f"direction_fit_{d.name}"] = (
                f"{d.score_name} of the linear model whose normal is the {d.name} direction")
    return metrics, notes


def canonical_sign(v: npt.ArrayLike) -> F64:
    """v / ‖v‖ with its largest-magnitude entry made positive."""
    unit = np.asarray(v, np.float64)
    unit = unit / np.linalg.norm(unit)
    return unit if unit[np.argmax(np.abs(unit))] > 0 else -unit


def sigma_along(latents: F64, unit: F64) -> float:
    """Std of the latents projected on a unit vector (the direction's σ)."""
    return max(float(np.std(latents @ unit)), _MIN_SIGMA)


def sefa_from_matrix(matrix: npt.ArrayLike, k: int, *, names: Sequence[str] | None = None,
                     where: str = "A", latents: npt.ArrayLike | None = None,
                     what: str = "prior latents") -> list[Discovered]:
    """SeFa on a weight A [out, N]: the top-k eigenvectors of AᵀA, largest eigenvalue first.

    σ = 1: under the N(0, I) prior every unit direction has unit std; with `latents` [M, N]
    (encoded data, or mapped samples in W: not isotropic) σ is their std along each direction.
    """
    a = np.asarray(matrix, np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise BundleError(f"weight: expected a finite [out, N] matrix, got shape {list(a.shape)}")
    _check_k(k, a.shape[1])
    z = None if latents is None else _finite_2d(latents, "latents")
    if z is not None and z.shape[1] != a.shape[1]:
        raise BundleError(f"latents: {z.shape[1]} dims, the weight has {a.shape[1]} columns")
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(-values, kind="stable")[:k]
    out = []
    for rank, (i, name) in enumerate(zip(order, _names(names, "sefa", k), strict=True)):
        value = float(values[i])
        unit = canonical_sign(vectors[:, i])
        sigma = 1.0 if z is None else sigma_along(z, unit)
        out.append(Discovered(
            name, unit.astype(np.float32), sigma, "sefa",
            f"1.0 = 1 σ of {what} along SeFa direction {rank} (eigenvalue {value:.4g} "
            f"of AᵀA, A = {where})", value, "eigenvalue of AᵀA"))
    return out


def pca_of_latents(latents: npt.ArrayLike, k: int, *, names: Sequence[str] | None = None,
                   what: str = "the given latents") -> list[Discovered]:
    """PCA of latents [M, N] themselves (for codes that are not isotropic), by explained
    variance; σ is the std of the latents along each component."""
    z = _finite_2d(latents, "latents")
    _check_k(k, z.shape[1])
    centred = z - z.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(z) - 1, 1))
    order = np.argsort(-values, kind="stable")[:k]
    total = float(values.sum())
    out = []
    for rank, (i, name) in enumerate(zip(order, _names(names, "pc", k), strict=True)):
        unit = canonical_sign(vectors[:, i])
        ratio = float(values[i]) / total if total > 0 else 0.0
        out.append(Discovered(
            name, unit.astype(np.float32), sigma_along(z, unit), "pca",
            f"1.0 = 1 σ of {what} along principal component {rank} ({100 * ratio:.1f}% of "
            "their variance)", ratio, "explained variance ratio"))
    return out


def pca_of_activations(latents: npt.ArrayLike, activations: npt.ArrayLike, k: int, *,
                       names: Sequence[str] | None = None, layer: str = "") -> list[Discovered]:
    """GANSpace for an isotropic prior: PCA of activations Y [M, D] of latents Z [M, N]; the
    coefficients X = (Y − ȳ) V of the top-k components are regressed onto Z (Z ≈ X U), and
    each row of U, normalised, is a latent direction, ordered by explained variance."""
    z = _finite_2d(latents, "latents")
    y = _finite_2d(np.asarray(activations).reshape(len(z), -1), "activations")
    _check_k(k, z.shape[1])
    centred = y - y.mean(axis=0)
    singular, vt = top_components(centred, k, rank_hint=z.shape[1])
    k_act = min(k, len(singular))
    coefficients = centred @ vt[:k_act].T                     # [M, k]
    u, *_ = np.linalg.lstsq(coefficients, z - z.mean(axis=0), rcond=None)  # [k, N]
    total = float(np.sum(centred**2))
    out = []
    for rank, name in enumerate(_names(names, "pc", k)[:k_act]):
        if np.linalg.norm(u[rank]) < 1e-12:
            raise BundleError(f"pca: component {rank} of {layer or 'the activations'} does not "
                              "depend on the latent; use fewer components (--k)")
        unit = canonical_sign(u[rank])
        ratio = float(singular[rank] ** 2) / total if total > 0 else 0.0
        out.append(Discovered(
            name, unit.astype(np.float32), sigma_along(z, unit), "pca",
            f"1.0 = 1 σ of prior latents along the latent direction of activation principal "
            f"component {rank} of {layer} ({100 * ratio:.1f}% of its variance)", ratio,
            "explained variance ratio of the activation"))
    return out


DENSE_SVD_MAX = 512
"""Activation matrices with min(M, D) up to this get an exact SVD; larger ones a randomised
one (`top_components`)."""
OVERSAMPLING = 16
POWER_ITERATIONS = 2
MAX_SKETCH = 256
"""Widest sketch (columns) of the randomised SVD."""


def top_components(centred: F64, k: int, *, rank_hint: int = 0,
                   seed: int = 0) -> tuple[F64, F64]:
    """The top-k singular values and right singular vectors [k, D] of a centred matrix [M, D].

    Small matrices get numpy's exact SVD. Larger ones (GANSpace's 4096 samples × thousands of
    activations) get the randomised range finder of Halko, Martinsson & Tropp (2011): a seeded
    Gaussian sketch, 2 power iterations re-orthonormalised by QR (in float32), then an exact
    SVD of the small projected matrix in float64 — deterministic (`seed`). The sketch spans
    max(k, `rank_hint`) + 16 columns (at most MAX_SKETCH): activations of an N-dimensional
    latent have about N strong components with close variances, and a sketch that covers them
    all finds the top k as an exact SVD does (to 6 digits on the DCGAN's 4096 × 8192
    activations)."""
    m, d = centred.shape
    if min(m, d) <= DENSE_SVD_MAX:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        return singular[:k], vt[:k]
    width = min(max(k, min(rank_hint, MAX_SKETCH - OVERSAMPLING)) + OVERSAMPLING, min(m, d))
    x = centred.astype(np.float32)          # the range finder in float32: half the traffic
    sketch = np.random.default_rng(seed).standard_normal((d, width)).astype(np.float32)
    q, _ = np.linalg.qr(x @ sketch)
    for _ in range(POWER_ITERATIONS):
        q, _ = np.linalg.qr(x.T @ q)
        q, _ = np.linalg.qr(x @ q)
    _, singular, vt = np.linalg.svd(q.astype(np.float64).T @ centred, full_matrices=False)
    return singular[:k], vt[:k]


def supervised(latents: npt.ArrayLike, labels: Mapping[str, npt.ArrayLike], *,
               names: Sequence[str] | None = None, seed: int = 0,
               what: str = "the labelled latents", penalty: float | None = None,
               meaning: Mapping[str, str] | None = None) -> list[Discovered]:
    """One InterFaceGAN normal per label column: logistic (IRLS) for two-valued labels, ridge
    least squares otherwise; the score is accuracy / R² on a held-out fifth (`seed` picks it).

    `penalty` is the L2 penalty on the normal (default RIDGE × the number of samples);
    `meaning` says per column what a positive edit does (default "larger <column>").
    """
    z = _finite_2d(latents, "latents")
    columns = list(labels)
    out_names = _names(names, "", len(columns)) if names else columns
    perm = np.random.default_rng(seed).permutation(len(z))
    test, train = perm[: max(1, len(z) // 5)], perm[max(1, len(z) // 5):]
    out = []
    for column, name in zip(columns, out_names, strict=True):
        y = np.asarray(labels[column], np.float64)
        if y.shape != (len(z),) or not np.all(np.isfinite(y)):
            raise BundleError(f"labels: column {column!r} must be {len(z)} finite numbers")
        values = np.unique(y)
        if len(values) < 2:
            raise BundleError(f"labels: column {column!r} is constant; no direction to find")
        if len(values) == 2:
            t = (y == values[1]).astype(np.float64)
            w_train, bias = logistic_normal(z[train], t[train], penalty=penalty)
            score = float(np.mean(((z[test] @ w_train + bias) > 0) == (t[test] > 0.5)))
            normal, score_name = logistic_normal(z, t, penalty=penalty)[0], "held-out accuracy"
        else:
            w_train, bias = ridge_normal(z[train], y[train], penalty=penalty)
            resid = y[test] - (z[test] @ w_train + bias)
            spread = float(np.sum((y[test] - y[test].mean()) ** 2))
            score = 1.0 - float(np.sum(resid**2)) / spread if spread > 0 else 0.0
            normal, score_name = ridge_normal(z, y, penalty=penalty)[0], "held-out R²"
        norm = float(np.linalg.norm(normal))
        if not math.isfinite(norm) or norm < 1e-12:
            raise BundleError(f"labels: column {column!r} is not linear in the latent (zero "
                              "normal)")
        unit = normal / norm
        sigma = sigma_along(z, unit)
        positive = (meaning or {}).get(column, f"larger {column}")
        out.append(Discovered(
            name, unit.astype(np.float32), sigma, "supervised",
            f"1.0 = 1 σ of {what} projected on the normal of a linear model of {column!r} "
            f"(σ = {sigma:.4g} latent units; positive = {positive})", score, score_name))
    return out


def ridge_normal(z: F64, y: F64, *, penalty: float | None = None) -> tuple[F64, float]:
    """Ridge least squares y ≈ z w + b (L2 `penalty` on w, default RIDGE · M): (w, b)."""
    alpha = RIDGE * len(z) if penalty is None else penalty
    zc, yc = z - z.mean(axis=0), y - y.mean()
    gram = zc.T @ zc + alpha * np.eye(z.shape[1])
    w = np.linalg.solve(gram, zc.T @ yc)
    return w, float(y.mean() - z.mean(axis=0) @ w)


def logistic_normal(z: F64, t: F64, *, penalty: float | None = None,
                    iterations: int = 50) -> tuple[F64, float]:
    """L2-penalised logistic regression of 0/1 targets t on z by IRLS (Newton): (w, b); the
    bias is not penalised (`penalty` default RIDGE · M)."""
    x = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    alpha = RIDGE * len(z) if penalty is None else penalty
    diagonal = alpha * np.eye(x.shape[1])
    diagonal[-1, -1] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + diagonal
        step = np.linalg.solve(hessian, x.T @ (t - p) - diagonal @ beta)
        beta += step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def _names(names: Sequence[str] | None, prefix: str, k: int) -> list[str]:
    if names:
        if len(names) != k:
            raise BundleError(f"names: {len(names)} names for {k} directions")
        return list(names)
    return [f"{prefix}{i}" for i in range(k)]


def _check_k(k: int, dim: int) -> None:
    if not 1 <= k <= dim:
        raise BundleError(f"k: must be in 1..{dim} (the latent size), got {k}")


def _finite_2d(x: npt.ArrayLike, what: str) -> F64:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise BundleError(f"{what}: expected [M, N] with M >= 2, got shape {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise BundleError(f"{what}: contains non-finite values")
    return a
