"""Disentanglement metrics for generators with known factors: edit monotonicity, leakage with
and without conditioning (InterFaceGAN), and MIG (disentanglement_lib protocol). Example::

    probe = fit_probe(mu_real, {"scale": scale, "pos_x": pos_x}, seed=0)
    rho = monotonicity(roundtrip, probe, "scale", d_scale, sigma, bases)
    plain, cond = leakage(roundtrip, probe, "pos_x", d_scale, sigma, d_pos_x, bases)
    score = mig(mu_real, factor_indices)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import mutual_info_score
from torch import nn

from latentserve.core.arrays import F32, F64
from latentserve.core.latent_ops import edit_latents, orthogonalize
from latentserve.registry.quality import latent_eval

Roundtrip = Callable[[F32], F32]
"""latents [B, N] → encoder mean of decoder(latents) [B, N]: what an edit did to the image."""

STRENGTHS: F64 = np.linspace(-3.0, 3.0, 13)
"""Edit strengths of the monotonicity and leakage sweeps (in the direction's σ unit)."""


@dataclass(frozen=True)
class FactorProbe:
    """Nonlinear factor regressor on encoder means, fitted on encoded real renders.

    A ReLU MLP (N → 64 → 64 → targets) on standardised inputs and targets; predictions are
    in units of each target's std over the training renders, so changes compare across
    factors.
    """

    names: tuple[str, ...]
    net: nn.Module
    z_mean: F64
    z_std: F64

    def predict(self, latents: npt.ArrayLike) -> dict[str, F64]:
        """latents [B, N] → standardised prediction of every target, each [B]."""
        z = (np.asarray(latents, np.float64) - self.z_mean) / self.z_std
        with torch.no_grad():
            out = self.net(torch.from_numpy(z.astype(np.float32))).numpy().astype(np.float64)
        return {name: out[:, i] for i, name in enumerate(self.names)}


def fit_probe(
    latents: npt.ArrayLike, targets: Mapping[str, npt.ArrayLike], seed: int, *, epochs: int = 40
) -> FactorProbe:
    """Fit the probe from latents [M, N] to each target [M] (MSE, Adam, seeded)."""
    z = np.asarray(latents, np.float64)
    names = tuple(targets)
    y = np.stack([np.asarray(targets[n], np.float64) for n in names], axis=1)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"targets have {y.shape[0]} rows, latents have {z.shape[0]}")
    std = y.std(axis=0)
    if np.any(std == 0):
        raise ValueError(
            f"constant probe targets: {[n for n, s in zip(names, std, strict=True) if s == 0]}"
        )
    z_mean, z_std = z.mean(axis=0), np.maximum(z.std(axis=0), 1e-6)
    zt = torch.from_numpy(((z - z_mean) / z_std).astype(np.float32))
    yt = torch.from_numpy(((y - y.mean(axis=0)) / std).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(z.shape[1], 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, len(names)),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(zt), generator=gen)
        for lo in range(0, len(zt), 256):
            idx = perm[lo : lo + 256]
            loss = torch.nn.functional.mse_loss(net(zt[idx]), yt[idx])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    net.eval()
    return FactorProbe(names, net, z_mean, z_std)


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman rank correlation (`latent_eval.spearman`); 0.0 when either side is constant."""
    rho = latent_eval.spearman(x, y)
    return 0.0 if math.isnan(rho) else rho


def monotonicity(
    roundtrip: Roundtrip,
    probe: FactorProbe,
    target: str,
    direction: F32,
    sigma: float,
    bases: F32,
    strengths: F64 = STRENGTHS,
) -> float:
    """Mean over bases of Spearman ρ(edit strength, probe's `target` after decode → encode)."""
    rows = edit_latents(bases, direction, strengths, sigma)
    pred = probe.predict(roundtrip(rows))[target].reshape(len(bases), len(strengths))
    return float(np.mean([spearman(strengths, p) for p in pred]))


def leakage(
    roundtrip: Roundtrip,
    probe: FactorProbe,
    other: str,
    direction: F32,
    sigma: float,
    held: F32,
    bases: F32,
    strengths: F64 = STRENGTHS,
) -> tuple[float, float]:
    """(plain, conditional) mean |change| of the probe's `other` target under the edit sweep.

    Plain edits move along `direction`; conditional ones along its part orthogonal to `held`
    (the `other` factor's direction), as the service does for `conditional_on`. Changes are
    in units of the factor's std over real renders, against the unedited base.
    """
    out = []
    for d in (direction, orthogonalize(direction, [held])):
        rows = edit_latents(bases, d, strengths, sigma)
        pred = probe.predict(roundtrip(rows))[other].reshape(len(bases), len(strengths))
        zero = int(np.argmin(np.abs(strengths)))
        out.append(float(np.mean(np.abs(pred - pred[:, zero : zero + 1]))))
    return out[0], out[1]


def mig(latents: npt.ArrayLike, factors: npt.ArrayLike, *, bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018) as disentanglement_lib computes it.

    Each latent dimension is discretised into `bins` equal-width bins; MI with each discrete
    factor (columns of `factors`, integer codes) is normalised by the factor's entropy and the
    gap between the two most informative dimensions averaged over factors.
    """
    z = np.asarray(latents, np.float64)
    f = np.asarray(factors)
    if z.ndim != 2 or f.ndim != 2 or len(z) != len(f):
        raise ValueError(f"latents {z.shape} and factors {f.shape} must be [M, N] and [M, K]")
    if z.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions")
    codes = np.stack([np.digitize(col, np.histogram(col, bins)[1][:-1]) for col in z.T], axis=0)
    gaps = []
    for k in range(f.shape[1]):
        entropy = mutual_info_score(f[:, k], f[:, k])
        if entropy == 0:
            continue
        mi = np.sort([mutual_info_score(c, f[:, k]) for c in codes])[::-1]
        gaps.append((mi[0] - mi[1]) / entropy)
    if not gaps:
        raise ValueError("factors: every factor is constant")
    return float(np.mean(gaps))
