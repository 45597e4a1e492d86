"""Batched numpy ↔ torch inference helpers for evaluating trained generators. Example::

mu = run_batched(lambda x: vae.encode(x)[0], images)        # float32 numpy [M, N]
decode64 = float64_copy(decoder)                             # for finite differences
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

Floats = npt.NDArray[np.floating[Any]]


def run_batched(
    fn: Callable[..., Tensor],
    *arrays: npt.NDArray[np.generic],
    batch: int = 512,
    dtype: torch.dtype = torch.float32,
) -> Floats:
    """fn over aligned numpy arrays in batches (no grad); floats cast to `dtype`, ints kept."""
    if not arrays or len({len(a) for a in arrays}) != 1:
        raise ValueError("run_batched needs one or more arrays of the same length")
    outs = []
    with torch.no_grad():
        for lo in range(0, len(arrays[0]), batch):
            parts = [
                torch.from_numpy(np.ascontiguousarray(a[lo : lo + batch])).to(
                    dtype if np.issubdtype(a.dtype, np.floating) else torch.int64
                )
                for a in arrays
            ]
            outs.append(fn(*parts).numpy())
    return np.concatenate(outs)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads, then restore the previous count."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def float64_copy(module: nn.Module) -> nn.Module:
    """An eval-mode float64 copy (the original is left as it is)."""
    return copy.deepcopy(module).double().eval()


def encode_with_samples(
    encode: Callable[..., tuple[Tensor, Tensor]],
    arrays: tuple[npt.NDArray[np.generic], ...],
    *,
    seed: int,
    batch: int = 512,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(μ, one posterior sample z = μ + σ·ε per item) of an encoder over aligned arrays.

    The samples are what the decoder sees in training: in collapsed dimensions they are
    N(0, 1) noise rather than a constant μ, so linear models fitted on them ignore those
    dimensions.
    """
    both = run_batched(lambda *t: torch.cat(encode(*t), dim=1), *arrays, batch=batch)
    mu, logvar = np.split(both.astype(np.float64), 2, axis=1)
    eps = np.random.default_rng(np.random.SeedSequence([seed, 0xE5])).standard_normal(mu.shape)
    z = mu + np.exp(0.5 * logvar) * eps
    return mu.astype(np.float32), z.astype(np.float32)
