"""Seeded sampling: item i of seed s is `default_rng(SeedSequence([s, i])).standard_normal(dim)`.

The one definition of a latent given as a seed, exact so any client can reproduce it with numpy
alone. `sample_latents` computes numpy's SeedSequence hash and the PCG64 state itself
(vectorised over items) and is bit-identical to `sample_latents_reference`, the definition
written out. Pure numpy; bad input raises `ValueError` naming the argument. Example::

    z = sample_latents(seed=7, n=4, dim=16)          # [4, 16] float32, reproducible anywhere
    keys = seed_latents([3, 9], dim=16)              # item 0 of seeds 3 and 9
    z = prior_latents(sample_latents(7, 4, 64), mean=0.0, scale=5.49)   # a scaled prior
    n0 = noise(seed=7, item=0, index=2, shape=(1, 16, 16))   # noise input 2 of item 0
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from latentserve.core.arrays import F32
from latentserve.core.checks import check_int

__all__ = [
    "MAX_SEED",
    "NOISE_DOMAIN",
    "noise",
    "noise_rows",
    "prior_latents",
    "sample_latents",
    "sample_latents_reference",
    "seed_latents",
]

MAX_SEED = 2**64 - 1
"""Largest seed (seeds are uint64 on the wire)."""
NOISE_DOMAIN = 0x6E6F697365
"""Last entropy word of every noise draw ("noise" in ASCII): no noise draw is a latent draw."""


def sample_latents(seed: int, n: int, dim: int, *, start: int = 0) -> F32:
    """Draw `n` standard-normal latents of size `dim`: items `start … start+n-1` of `seed`.

    Row i is `default_rng(SeedSequence([seed, start + i])).standard_normal(dim)` (float64)
    cast to float32, so item i of a seed is the same whatever n, batch split or machine.
    numpy splits a seed ≥ 2**32 into two 32-bit words and zero-pads short entropy, so item 0
    of seed `lo + hi·2**32` equals item `hi` of seed `lo`::

        z = sample_latents(42, 16, 128)
        assert (z[8:] == sample_latents(42, 8, 128, start=8)).all()

    Bit-identical to `sample_latents_reference`, but each item's PCG64 state is computed by
    `_pcg64_states` (SeedSequence's hash, vectorised over items) and one thread-local
    generator is re-seeded per item instead of building a SeedSequence and a Generator.
    """
    seed = check_int(seed, "seed", low=0, high=MAX_SEED)
    n = check_int(n, "n", low=0)
    dim = check_int(dim, "dim", low=1)
    start = check_int(start, "start", low=0)
    if start + n - 1 > MAX_SEED:  # item indices of 3+ words: numpy's general path
        return sample_latents_reference(seed, n, dim, start=start)
    out = np.empty((n, dim), dtype=np.float32)
    bits, generator = _thread_generator()
    for i, (state, inc) in enumerate(_pcg64_states(seed, start, n)):
        bits.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                      "has_uint32": 0, "uinteger": 0}
        out[i] = generator.standard_normal(dim)
    return out


def seed_latents(seeds: Sequence[int], dim: int) -> F32:
    """One latent per seed, item 0 of each: what a keyframe or an edit base given as a seed
    stands for (`sample_latents(s, 1, dim)[0]` per seed s)."""
    out = np.empty((len(seeds), dim), dtype=np.float32)
    for row, seed in enumerate(seeds):
        out[row] = sample_latents(int(seed), 1, dim)[0]
    return out


def prior_latents(eps: F32, mean: float, scale: float) -> F32:
    """Prior latents z = mean + scale·ε from standard normals ε (float64 math, float32 result).

    The standard prior (mean 0, scale 1) returns ε itself, bit for bit."""
    if mean == 0.0 and scale == 1.0:
        return eps
    out: F32 = (mean + scale * eps.astype(np.float64)).astype(np.float32)
    return out


def noise(seed: int, item: int, index: int, shape: Sequence[int]) -> F32:
    """Noise input `index` of item `item` under noise seed `seed`: float32 of `shape`,
    `default_rng(SeedSequence([seed, item, index, NOISE_DOMAIN])).standard_normal(shape)`.

    Depends only on its arguments, so the same item gets the same noise whatever the request's
    size, batching, backend or replica::

        n = noise(0, 0, 3, (1, 8, 8))
    """
    seed = check_int(seed, "seed", low=0, high=MAX_SEED)
    item = check_int(item, "item", low=0)
    index = check_int(index, "index", low=0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, item, index, NOISE_DOMAIN]))
    out: F32 = rng.standard_normal(tuple(shape)).astype(np.float32)
    return out


def noise_rows(seed: int, items: Sequence[int], index: int, shape: Sequence[int]) -> F32:
    """`noise(seed, item, index, shape)` for each item, stacked: [len(items), *shape]."""
    out = np.empty((len(items), *shape), dtype=np.float32)
    for row, item in enumerate(items):
        out[row] = noise(seed, int(item), index, shape)
    return out


def sample_latents_reference(seed: int, n: int, dim: int, *, start: int = 0) -> F32:
    """`sample_latents` by its definition, one SeedSequence and Generator per item (slow)."""
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, start + i]))
        out[i] = rng.standard_normal(dim)
    return out


# SeedSequence's constants (numpy/random/bit_generator.pyx) and PCG64's multiplier (pcg64.h).
_M32 = 0xFFFFFFFF
_M128 = (1 << 128) - 1
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_VECTOR_FROM = 32
"""Item count from which the pool hash runs on numpy columns for all items at once (measured:
below it numpy's per-call overhead costs more than one SeedSequence per item)."""
_local = threading.local()


def _thread_generator() -> tuple[np.random.PCG64, np.random.Generator]:
    """This thread's re-seedable PCG64 and its Generator (built once per thread)."""
    found: tuple[np.random.PCG64, np.random.Generator] | None = getattr(_local, "rng", None)
    if found is None:
        bits = np.random.PCG64(0)
        found = _local.rng = (bits, np.random.Generator(bits))
    return found


def _hash_constants(init: int, mult: int, count: int) -> list[tuple[int, int]]:
    """(xor, multiply) pairs of SeedSequence's successive hash steps from `init`."""
    values = [init]
    for _ in range(count):
        values.append((values[-1] * mult) & _M32)
    return list(itertools.pairwise(values))


_MIX_A = _hash_constants(_INIT_A, _MULT_A, 16)
"""Steps 0-3 hash the entropy words into the pool; steps 4-15 mix pool words pairwise."""
_MIX_STEPS = [(src, dst, *_MIX_A[4 + k])
              for k, (src, dst) in enumerate((s, d) for s in range(4) for d in range(4) if s != d)]
_OUT_STEPS = [(k % 4, *pair) for k, pair in enumerate(_hash_constants(_INIT_B, _MULT_B, 8))]


def _mix_pool(words: list[Any]) -> list[Any]:
    """SeedSequence's 4-word entropy pool of 4 entropy words (zero-padded), each a uint32
    column with one entry per item (Python ints work too, masked to 32 bits alike)."""
    pool = []
    for word, (xor, mul) in zip(words, _MIX_A[:4], strict=True):
        value = ((word ^ xor) * mul) & _M32
        pool.append(value ^ (value >> 16))
    for src, dst, xor, mul in _MIX_STEPS:
        value = ((pool[src] ^ xor) * mul) & _M32
        mixed = (_MIX_MULT_L * pool[dst] - _MIX_MULT_R * (value ^ (value >> 16))) & _M32
        pool[dst] = mixed ^ (mixed >> 16)
    return pool


def _pool_state(pool: list[Any]) -> list[Any]:
    """SeedSequence's `generate_state(4, uint64)` of a pool, as 8 32-bit words."""
    state = []
    for src, xor, mul in _OUT_STEPS:
        value = ((pool[src] ^ xor) * mul) & _M32
        state.append(value ^ (value >> 16))
    return state


def _pcg64_states(seed: int, start: int, n: int) -> list[tuple[int, int]]:
    """(state, inc) of `PCG64(SeedSequence([seed, start + i]))` for i < n (start + n ≤ 2**64).

    Entropy words are seed's 32-bit words then the item's, zero-padded to the pool size of 4
    (a missing high word of the item and the padding are both 0, so both cases are one).
    """
    if n < _VECTOR_FROM:  # numpy's own pool mixing (C) per item, then the state as below
        halves = [_pool_state(np.random.SeedSequence([seed, i]).pool.tolist())
                  for i in range(start, start + n)]
    else:
        seed_words = [seed & _M32] if seed <= _M32 else [seed & _M32, seed >> 32]
        items = np.arange(start, start + n, dtype=np.uint64)
        columns: list[Any] = [np.full(n, w, dtype=np.uint32) for w in seed_words]
        columns += [(items & _M32).astype(np.uint32), (items >> np.uint64(32)).astype(np.uint32)]
        columns += [np.zeros(n, dtype=np.uint32)] * (4 - len(columns))
        halves = np.stack(_pool_state(_mix_pool(columns)), axis=1).astype(np.uint64).tolist()
    states = []
    for h in halves:
        initstate = (h[1] << 96) | (h[0] << 64) | (h[3] << 32) | h[2]
        inc = ((((h[5] << 96) | (h[4] << 64) | (h[7] << 32) | h[6]) << 1) | 1) & _M128
        states.append((((inc + initstate) * _PCG_MULT + inc) & _M128, inc))
    return states
