"""The polish phase of a projection: Levenberg–Marquardt on the pixel residual with a
forward-difference Jacobian, for small editing spaces (a few dozen coordinates at most).

CMA-ES finds the basin; near its bottom a Gauss–Newton step of the pixel residual goes
straight to it, and its Jacobian costs only `dim` decodes (all searches' perturbations decode
as one batch). Each step: decode the `dim` perturbations of every search's best latent, solve
(JᵀJ + μ diag JᵀJ) δ = −Jᵀ r, decode the candidate; the full loss (MSE + λ (1 − MS-SSIM))
decides whether it is kept (μ shrinks) or not (μ grows). Example::

    polish = Polish(best_latents, best_images, targets_of_searches, spread)
    rows, owner = polish.perturbations()              # decode rows → images
    candidates = polish.propose(decoded_rows)         # decode candidates → images, losses
    polish.settle(candidate_images, candidate_losses, better)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentserve.core.arrays import F32, F64

MAX_DIM = 64
"""Editing spaces larger than this are not polished (a Jacobian costs `dim` decodes)."""
SHARE = 0.4
"""Share of a projection's steps given to the polish (when the space is small enough)."""
STEP = 1e-3
"""Forward-difference step, in units of the prior's spread per coordinate."""
DAMPING = 1e-3
"""Initial Levenberg–Marquardt damping μ (relative to diag JᵀJ)."""


class Polish:
    """Per-search Levenberg–Marquardt state: current latent, its image, damping."""

    def __init__(self, latents: F32, images: F32, targets: F32, spread: F64) -> None:
        self.x = np.asarray(latents, np.float64).copy()
        self.images = np.asarray(images, np.float32).copy()
        self.targets = targets
        self.h = STEP * np.asarray(spread, np.float64)[: self.x.shape[1]]
        self.mu = np.full(len(self.x), DAMPING)
        self._candidates: F64 | None = None

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def perturbations(self) -> tuple[F32, np.ndarray[Any, np.dtype[np.int64]]]:
        """Rows to decode for the Jacobians ([searches · dim, dim]) and the search of each."""
        n, d = self.x.shape
        rows = np.repeat(self.x, d, axis=0) + np.tile(np.diag(self.h), (n, 1))
        return rows.astype(np.float32), np.repeat(np.arange(n, dtype=np.int64), d)

    def propose(self, decoded: F32) -> F32:
        """Each search's Levenberg–Marquardt candidate from the decoded perturbations."""
        n, d = self.x.shape
        base = self.images.reshape(n, -1).astype(np.float64)
        jac = (decoded.reshape(n, d, -1).astype(np.float64) - base[:, None, :]) / self.h[
            None, :, None]
        resid = base - self.targets.reshape(n, -1).astype(np.float64)
        steps = np.zeros_like(self.x)
        for i in range(n):
            jtj = jac[i] @ jac[i].T
            grad = jac[i] @ resid[i]
            damped = jtj + self.mu[i] * np.diag(np.maximum(np.diag(jtj), 1e-12))
            try:
                steps[i] = -np.linalg.solve(damped, grad)
            except np.linalg.LinAlgError:
                steps[i] = 0.0
        self._candidates = self.x + steps
        return self._candidates.astype(np.float32)

    def settle(self, images: F32, better: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
        """Keep the candidates whose loss beat the search's best so far; adapt μ."""
        assert self._candidates is not None
        self.x[better] = self._candidates[better]
        self.images[better] = images[better]
        self.mu = np.where(better, np.maximum(self.mu / 3.0, 1e-9), self.mu * 4.0)
        self._candidates = None
