"""Factor-aligned latent spaces: each latent axis is one generative factor.

A factor's *quantile* u ∈ (0, 1) is where its value sits in its range. Latents first mix into
normal scores s = M z (M lower triangular with unit-norm rows, so each s_f ~ N(0, 1)); a row
with two entries couples two factors the way the data does (e.g. sprites lower in the frame
are larger: ρ = corr(s_scale, s_pos_y)). Then:

* a linear factor has u = Φ(s / LINEAR_SPREAD): monotone, every latent a valid value, and
  close enough to linear over the prior's range that a strength means nearly the same change
  from every seed (with Φ(s) itself, the exact uniform copula, an edit from a seed in the
  prior's tail barely moves: pooled rank correlation 0.91 instead of 0.98);
* a circular factor (orientation, hue) has u = frac(s / CIRCULAR_PERIOD + 1/2): a latent line
  turns it at constant speed, and the prior's phase is uniform within ±1.5 %. Latents that
  differ by CIRCULAR_PERIOD on such an axis draw the same image; encoders return the branch
  in [−CIRCULAR_PERIOD/2, CIRCULAR_PERIOD/2).

Example::

    layout = FactorLatent(("scale", "pos_y"), circular=(), couplings={"scale": ("pos_y", 0.5)})
    u = layout.quantiles(z)            # float64 [n, 2] in (0, 1)
    z_again = layout.latents(u)        # inverse (linear quantiles clipped to [QMIN, 1 − QMIN])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from scipy.special import ndtr, ndtri
from torch import Tensor

from latentserve.core.arrays import F64

LINEAR_SPREAD = 2.0
CIRCULAR_PERIOD = 2.0
QMIN = 1e-4
"""Linear quantiles are clipped to [QMIN, 1 − QMIN] when mapped back to latents: factor
values at the very ends of their range (a sprite at pos 0) still have a finite latent."""


@dataclass(frozen=True)
class FactorLatent:
    """The latent layout of a factor-aligned generator: axis order, circular axes, couplings."""

    factors: tuple[str, ...]
    circular: tuple[str, ...] = ()
    couplings: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """factor → (parent factor, ρ): s_factor = ρ · z_parent + √(1 − ρ²) · z_factor."""

    def __post_init__(self) -> None:
        for name in self.circular:
            if name not in self.factors:
                raise ValueError(f"circular factor {name!r} is not one of {self.factors}")
        for child, (parent, rho) in self.couplings.items():
            if child not in self.factors or parent not in self.factors or child == parent:
                raise ValueError(f"coupling {child!r} ← {parent!r}: unknown or self factor")
            if not -1.0 < rho < 1.0:
                raise ValueError(f"coupling {child!r} ← {parent!r}: ρ must be in (-1, 1)")

    @property
    def dim(self) -> int:
        """N, the latent dimension (one axis per factor)."""
        return len(self.factors)

    def index(self, name: str) -> int:
        """Position of a factor's axis."""
        return self.factors.index(name)

    def mixing(self) -> F64:
        """M [N, N]: normal scores s = M z (unit-norm rows, so each s_f ~ N(0, 1))."""
        m = np.eye(self.dim)
        for child, (parent, rho) in self.couplings.items():
            i, j = self.index(child), self.index(parent)
            m[i, i], m[i, j] = math.sqrt(1.0 - rho * rho), rho
        return m

    def _is_circular(self) -> npt.NDArray[np.bool_]:
        return np.array([f in self.circular for f in self.factors])

    def quantiles(self, z: F64) -> F64:
        """Latents [n, N] → factor quantiles [n, N] in [0, 1)."""
        s = np.asarray(z, np.float64) @ self.mixing().T
        circ = self._is_circular()
        u = np.where(circ, np.mod(s / CIRCULAR_PERIOD + 0.5, 1.0), ndtr(s / LINEAR_SPREAD))
        return np.asarray(u, np.float64)

    def latents(self, u: F64) -> F64:
        """Factor quantiles [n, N] → latents [n, N] (the inverse of `quantiles`; circular
        factors on the branch s ∈ [−CIRCULAR_PERIOD/2, CIRCULAR_PERIOD/2))."""
        uu = np.asarray(u, np.float64)
        circ = self._is_circular()
        s = np.where(circ, CIRCULAR_PERIOD * (np.mod(uu, 1.0) - 0.5),
                     LINEAR_SPREAD * ndtri(np.clip(uu, QMIN, 1.0 - QMIN)))  # fmt: skip
        return np.asarray(s @ np.linalg.inv(self.mixing()).T, np.float64)

    def sample(self, n: int, seed: int) -> F64:
        """`n` prior latents drawn from `seed` (float64 [n, N])."""
        return np.random.default_rng(np.random.SeedSequence([seed, 0x1A7])).standard_normal(
            (n, self.dim)
        )

    def features(self, z: Tensor) -> Tensor:
        """The decoder's input features of latents [B, N]: each linear factor's quantile u,
        and (cos 2πu, sin 2πu) for each circular one, so the wrap-around is smooth."""
        mix = torch.as_tensor(self.mixing(), dtype=z.dtype)
        s = z @ mix.T
        cols: list[Tensor] = []
        for i, name in enumerate(self.factors):
            if name in self.circular:
                angle = 2.0 * math.pi * (s[:, i] / CIRCULAR_PERIOD + 0.5)
                cols += [torch.cos(angle), torch.sin(angle)]
            else:
                cols.append(0.5 * (1.0 + torch.erf(s[:, i] / (LINEAR_SPREAD * math.sqrt(2.0)))))
        return torch.stack(cols, dim=1)

    def turns(self) -> dict[str, list[float]]:
        """Circular factor → the latent displacement of one full turn (the bundle spec's
        `circular`): CIRCULAR_PERIOD along the factor's score, others unchanged."""
        inv = np.linalg.inv(self.mixing())
        return {name: [float(v) for v in CIRCULAR_PERIOD * inv[:, self.index(name)]]
                for name in self.circular}

    @property
    def feature_dim(self) -> int:
        """Width of `features`: 1 per linear factor, 2 per circular one."""
        return self.dim + len(self.circular)

    def head_targets(self, u: F64) -> F64:
        """What an encoder head regresses for quantiles [n, N]: the normal score of each
        linear factor, (cos 2πu, sin 2πu) of each circular one (same order as `features`)."""
        cols: list[F64] = []
        for i, name in enumerate(self.factors):
            if name in self.circular:
                cols += [np.cos(2 * np.pi * u[:, i]), np.sin(2 * np.pi * u[:, i])]
            else:
                cols.append(LINEAR_SPREAD * ndtri(np.clip(u[:, i], QMIN, 1.0 - QMIN)))
        return np.stack(cols, axis=1)

    def head_to_latent(self, head: Tensor) -> Tensor:
        """Encoder head outputs [B, feature_dim] → latents [B, N] (torch ops ONNX exports):
        a circular pair becomes its phase by atan2, then the score on the principal branch."""
        scores: list[Tensor] = []
        col = 0
        for name in self.factors:
            if name in self.circular:
                turn = torch.atan2(head[:, col + 1], head[:, col]) / (2.0 * math.pi)
                scores.append(CIRCULAR_PERIOD * (torch.remainder(turn, 1.0) - 0.5))
                col += 2
            else:
                scores.append(head[:, col])
                col += 1
        inv = torch.as_tensor(np.linalg.inv(self.mixing()), dtype=head.dtype)
        return torch.stack(scores, dim=1) @ inv.T
