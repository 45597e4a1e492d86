"""Circular factors: latents that differ by whole turns draw the same image; pick one.

A circular factor (an orientation, a hue) is described by its `turn`, the latent displacement
of one full turn: z and z + k·turn (k integer) decode to the same image. The canonical
representative is the one nearest a centre (the prior's), so edits and paths from it do not
spin extra turns. Example::

    z = canonical(z, turns=np.array([[0, 2, 0, 0]]), centre=np.zeros(4))
    # the orientation coordinate of every row is now in [-1, 1]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32

_PASSES = 3
"""Rounding passes over the factors: exact after one when turns are orthogonal; a few more
settle nearly orthogonal ones."""


def canonical(z: F32, turns: npt.ArrayLike, centre: npt.ArrayLike) -> F32:
    """Rows of `z` [n, D] moved by whole turns (`turns` [k, D]) to the representative nearest
    `centre` ([D] or a scalar)."""
    t = np.asarray(turns, np.float64).reshape(-1, z.shape[1]) if np.size(turns) else None
    if t is None or len(z) == 0:
        return z
    out = np.asarray(z, np.float64).copy()
    c = np.broadcast_to(np.asarray(centre, np.float64), (z.shape[1],))
    norms = np.einsum("kd,kd->k", t, t)
    for _ in range(_PASSES):
        k = np.rint((out - c) @ t.T / norms)  # [n, k]: whole turns to take off
        if not k.any():
            break
        out -= k @ t
    return out.astype(np.float32)


def turns_off(z: F32, turns: npt.ArrayLike, centre: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Per row and factor: how many whole turns `z` lies from its canonical representative
    (0 everywhere when canonical)."""
    t = np.asarray(turns, np.float64).reshape(-1, z.shape[1])
    c = np.broadcast_to(np.asarray(centre, np.float64), (z.shape[1],))
    norms = np.einsum("kd,kd->k", t, t)
    off: npt.NDArray[np.int64] = np.rint((np.asarray(z, np.float64) - c) @ t.T / norms).astype(
        np.int64)
    return off
