"""Direction discovery for any bundle, in numpy on the bundle's ONNX files (no torch):

- `sefa`: SeFa (Shen & Zhou 2021) — eigenvectors of AᵀA for A, the first weight acting on
  the latent, read from the decoder's initializers; sorted by eigenvalue, largest first.
- `pca`: GANSpace (Härkönen et al. 2020) — for the isotropic N(0, I) prior, PCA of an early
  decoder activation over prior samples, then each component's coefficients regressed back
  onto the latents (least squares) to give latent directions; with given latents (e.g.
  encoded data, not isotropic) plain PCA of those latents.
- `supervised`: InterFaceGAN — the normal of a linear model from latents to each label
  (logistic regression by IRLS for 0/1 labels, ridge least squares otherwise).

A two-stage (StyleGAN-like) bundle edits in W, and so do its directions: SeFa reads every
weight acting on the decoder's W input, stacked with unit rows (as SeFa does with StyleGAN's
style affines; `weight` picks one instead), and PCA is
GANSpace's StyleGAN variant, PCA of sampled w = mapping(z) itself; σ is measured on those
mapped samples, and supervised fits take W latents (given, or encoded images).

Every direction is a unit vector with a deterministic sign (its largest-magnitude entry
positive for sefa/pca; towards larger labels for supervised) and σ, the std of the latents'
projection on it, so strength 1.0 is 1 σ of latent codes along d. Example::

    found = sefa(load_bundle(Path("out/my-vae")), k=4)
    found[0].name, found[0].sigma, found[0].score     # "sefa0", 1.0, top eigenvalue
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx

from latentserve.core.arrays import F32, F64
from latentserve.core.seeding import sample_latents
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.onnx_graph import (
    early_activation,
    first_latent_layer,
    style_layers,
    with_outputs,
)
from latentserve.registry.bundle.spec import BundleError, DirectionSpec
from latentserve.registry.quality.onnx_generator import OnnxGenerator, cpu_session

PCA_SAMPLES = 4096
"""Prior samples (Sample seed 0) whose activations PCA sees."""
RIDGE = 1e-3
"""L2 penalty (× number of samples) of the supervised fits."""
_MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class Discovered:
    """One found direction, ready for the bundle: unit vector, σ and its spec entry."""

    name: str
    vector: F32
    sigma: float
    method: str
    unit: str
    score: float
    """Eigenvalue of AᵀA (sefa), explained-variance ratio (pca), held-out accuracy or R²
    (supervised)."""
    score_name: str

    def spec(self) -> DirectionSpec:
        """The `latentserve.json` entry."""
        return DirectionSpec(name=self.name, method=self.method,  # type: ignore[arg-type]
                             unit=self.unit)


def canonical_sign(v: npt.ArrayLike) -> F64:
    """v / ‖v‖ with its largest-magnitude entry made positive."""
    unit = np.asarray(v, np.float64)
    unit = unit / np.linalg.norm(unit)
    return unit if unit[np.argmax(np.abs(unit))] > 0 else -unit


def sigma_along(latents: F64, unit: F64) -> float:
    """Std of the latents projected on a unit vector (the direction's σ)."""
    return max(float(np.std(latents @ unit)), _MIN_SIGMA)


def _names(names: Sequence[str] | None, prefix: str, k: int) -> list[str]:
    if names:
        if len(names) != k:
            raise BundleError(f"names: {len(names)} names for {k} directions")
        return list(names)
    return [f"{prefix}{i}" for i in range(k)]


def _check_k(k: int, dim: int) -> None:
    if not 1 <= k <= dim:
        raise BundleError(f"k: must be in 1..{dim} (the latent size), got {k}")


def sefa_from_matrix(matrix: npt.ArrayLike, k: int, *, names: Sequence[str] | None = None,
                     where: str = "A", latents: F64 | None = None,
                     what: str = "prior latents") -> list[Discovered]:
    """SeFa on a weight A [out, N]: the top-k eigenvectors of AᵀA, largest eigenvalue first.

    σ = 1: under the N(0, I) prior every unit direction has unit std; with `latents` (e.g.
    mapped samples in W, not isotropic) σ is their std along each direction.
    """
    a = np.asarray(matrix, np.float64)
    _check_k(k, a.shape[1])
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(-values, kind="stable")[:k]
    out = []
    for rank, (i, name) in enumerate(zip(order, _names(names, "sefa", k), strict=True)):
        value = float(values[i])
        unit = canonical_sign(vectors[:, i])
        sigma = 1.0 if latents is None else sigma_along(latents, unit)
        out.append(Discovered(
            name, unit.astype(np.float32), sigma, "sefa",
            f"1.0 = 1 σ of {what} along SeFa direction {rank} (eigenvalue {value:.4g} "
            f"of AᵀA, A = {where})", value, "eigenvalue of AᵀA"))
    return out


def sefa(bundle: Bundle, k: int, *, weight: str | None = None,
         names: Sequence[str] | None = None,
         samples: int = PCA_SAMPLES) -> list[Discovered]:
    """SeFa directions of a bundle, A read from its decoder (or the initializer `weight`); in
    W (two-stage), σ is the std of `samples` mapped prior samples along each direction."""
    model = onnx.load(str(bundle.decoder_path))
    spec = bundle.spec
    if spec.mapping is not None and weight is None:
        layers = style_layers(model, spec.decoder.input, spec.editing_dim)
        stacked = np.concatenate([_unit_rows(layer.matrix) for layer in layers])
        where = (f"{len(layers)} weights reading w stacked [{stacked.shape[0]} × "
                 f"{stacked.shape[1]}], unit rows")
        return sefa_from_matrix(stacked, k, names=names, where=where,
                                latents=mapped_prior(bundle, samples), what=MAPPED)
    layer = first_latent_layer(model, spec.decoder.input, spec.editing_dim, weight)
    where = f"{layer.op} {layer.node!r} weight {layer.weight!r} [{layer.matrix.shape[0]} × " \
            f"{layer.matrix.shape[1]}]"
    if spec.mapping is None:
        return sefa_from_matrix(layer.matrix, k, names=names, where=where)
    return sefa_from_matrix(layer.matrix, k, names=names, where=where,
                            latents=mapped_prior(bundle, samples), what=MAPPED)


def _unit_rows(matrix: F64) -> F64:
    """Rows scaled to unit length (SeFa's normalisation of the style weights)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: F64 = matrix / np.where(norms > 0, norms, 1.0)
    return out


def pca_of_latents(latents: npt.ArrayLike, k: int, *, names: Sequence[str] | None = None,
                   what: str = "the given latents") -> list[Discovered]:
    """PCA of latents [M, N] themselves (for codes that are not isotropic); σ = √eigenvalue."""
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
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k_act = min(k, len(singular))
    coefficients = centred @ vt[:k_act].T                     # [M, k]
    u, *_ = np.linalg.lstsq(coefficients, z - z.mean(axis=0), rcond=None)  # [k, N]
    total = float(np.sum(singular**2))
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


MAPPED = "mapped prior samples w"


def mapped_prior(bundle: Bundle, samples: int) -> F64:
    """W codes of `samples` prior latents (Sample seed 0, untruncated) of a two-stage bundle."""
    return OnnxGenerator(bundle).sample_latents(0, samples).astype(np.float64)


def pca(bundle: Bundle, k: int, *, layer: str | None = None, samples: int = PCA_SAMPLES,
        names: Sequence[str] | None = None) -> list[Discovered]:
    """GANSpace directions of a bundle: PCA of the first activation after the latent's first
    layer (or the tensor `layer`) over `samples` prior latents, regressed onto the latents.

    A two-stage bundle gets GANSpace's StyleGAN variant: PCA of `samples` mapped prior
    samples w (no `layer`), σ their std along each component."""
    spec = bundle.spec
    if spec.mapping is not None:
        if layer is not None:
            raise BundleError("layer: a two-stage bundle's PCA is of sampled w = mapping(z) "
                              "itself (GANSpace for StyleGAN); --layer does not apply")
        return pca_of_latents(mapped_prior(bundle, samples), k, names=names, what=MAPPED)
    model = onnx.load(str(bundle.decoder_path))
    if layer is None:
        layer = early_activation(model, first_latent_layer(model, spec.decoder.input,
                                                           spec.latent_dim))
    elif not any(layer in n.output for n in model.graph.node):
        raise BundleError(f"layer: the decoder has no tensor named {layer!r}")
    session = cpu_session(with_outputs(model, [layer]))
    z = sample_latents(0, samples, spec.latent_dim)
    chunks = []
    for lo in range(0, samples, spec.max_batch_size):
        rows = z[lo : lo + spec.max_batch_size]
        feeds: dict[str, np.ndarray] = {spec.decoder.input: rows}
        if spec.decoder.condition_input is not None:
            items = np.arange(lo, lo + len(rows), dtype=np.int64)
            feeds[spec.decoder.condition_input] = items % spec.num_classes
        out = session.run([layer], feeds)[0]
        chunks.append(np.asarray(out, np.float64).reshape(len(rows), -1))
    return pca_of_activations(z, np.concatenate(chunks), k, names=names, layer=repr(layer))


def supervised(latents: npt.ArrayLike, labels: Mapping[str, npt.ArrayLike], *,
               names: Sequence[str] | None = None, seed: int = 0,
               what: str = "the labelled latents") -> list[Discovered]:
    """One InterFaceGAN normal per label column: logistic (IRLS) for two-valued labels, ridge
    least squares otherwise; the score is accuracy / R² on a held-out fifth."""
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
            w_train, bias = logistic_normal(z[train], t[train])
            score = float(np.mean(((z[test] @ w_train + bias) > 0) == (t[test] > 0.5)))
            normal, score_name = logistic_normal(z, t)[0], "held-out accuracy"
        else:
            w_train, bias = ridge_normal(z[train], y[train])
            resid = y[test] - (z[test] @ w_train + bias)
            spread = float(np.sum((y[test] - y[test].mean()) ** 2))
            score = 1.0 - float(np.sum(resid**2)) / spread if spread > 0 else 0.0
            normal, score_name = ridge_normal(z, y)[0], "held-out R²"
        norm = float(np.linalg.norm(normal))
        if not math.isfinite(norm) or norm < 1e-12:
            raise BundleError(f"labels: column {column!r} is not linear in the latent (zero "
                              "normal)")
        unit = normal / norm
        sigma = sigma_along(z, unit)
        out.append(Discovered(
            name, unit.astype(np.float32), sigma, "supervised",
            f"1.0 = 1 σ of {what} projected on the normal of a linear model of {column!r} "
            f"(σ = {sigma:.4g} latent units; positive = larger {column})", score, score_name))
    return out


def ridge_normal(z: F64, y: F64) -> tuple[F64, float]:
    """Ridge least squares y ≈ z w + b (penalty RIDGE · M on w): (w, b)."""
    zc, yc = z - z.mean(axis=0), y - y.mean()
    gram = zc.T @ zc + RIDGE * len(z) * np.eye(z.shape[1])
    w = np.linalg.solve(gram, zc.T @ yc)
    return w, float(y.mean() - z.mean(axis=0) @ w)


def logistic_normal(z: F64, t: F64, *, iterations: int = 50) -> tuple[F64, float]:
    """L2-penalised logistic regression of 0/1 targets t on z by IRLS (Newton): (w, b)."""
    x = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    penalty = RIDGE * len(z) * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, x.T @ (t - p) - penalty @ beta)
        beta += step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def _finite_2d(x: npt.ArrayLike, what: str) -> F64:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise BundleError(f"{what}: expected [M, N] with M >= 2, got shape {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise BundleError(f"{what}: contains non-finite values")
    return a
