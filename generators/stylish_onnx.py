"""The exported `stylish-shapes` networks run with onnxruntime the way the service runs a W+
bundle: map z → w, broadcast w to the L style layers, decode W+ with the bundle's noise.
Example::

    gen = WPlusOnnx(mapping_path, decoder_path, noise_shapes)
    ws = gen.broadcast(gen.map(z))                 # [n, L, w_dim]
    images = gen.decode(ws)                        # [n, 3, 64, 64] in [0, 1] (const noise)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentserve.core.arrays import F32
from latentserve.core.seeding import noise
from latentserve.registry.bundle.preview import to_unit_range
from latentserve.registry.quality.onnx_generator import cpu_session

OUTPUT_RANGE = (-1.0, 1.0)
BATCH = 256


def const_noise(shapes: Sequence[Sequence[int]]) -> list[F32]:
    """The "const" noise of each input: drawn once with noise seed 0 for item 0 [1, C, H, W]."""
    return [noise(0, 0, k, tuple(shape))[None] for k, shape in enumerate(shapes)]


def noise_names(count: int) -> list[str]:
    """Graph input names of the noise images, in order."""
    return [f"noise{k}" for k in range(count)]


class WPlusOnnx:
    """onnxruntime sessions of a mapping (z → w) and a W+ decoder (ws + noise → x)."""

    def __init__(self, mapping: Path | bytes, decoder: Path | bytes,
                 noise_shapes: Sequence[Sequence[int]], num_ws: int, *, threads: int = 0):
        self.mapping = cpu_session(mapping, threads=threads)
        self.decoder = cpu_session(decoder, threads=threads)
        self.noise = const_noise(noise_shapes)
        self.names = noise_names(len(noise_shapes))
        self.num_ws = num_ws

    def map(self, z: F32) -> F32:
        """w [n, w_dim] of z [n, N]."""
        out = [self.mapping.run(["w"], {"z": np.ascontiguousarray(z[lo:lo + BATCH], np.float32)})
               [0] for lo in range(0, len(z), BATCH)]  # fmt: skip
        return np.concatenate(out).astype(np.float32)

    def broadcast(self, w: F32) -> F32:
        """ws [n, L, w_dim]: w on every style layer."""
        return np.repeat(np.asarray(w, np.float32)[:, None], self.num_ws, axis=1)

    def decode_raw(self, ws: F32, noise_images: Sequence[F32] | None = None) -> F32:
        """Decoder outputs in [-1, 1] of ws [n, L, w_dim] (const noise unless given)."""
        out = []
        for lo in range(0, len(ws), BATCH):
            rows = np.ascontiguousarray(ws[lo:lo + BATCH], np.float32)
            feeds = {"ws": rows}
            for k, name in enumerate(self.names):
                given = self.noise[k] if noise_images is None else noise_images[k][lo:lo + BATCH]
                feeds[name] = np.ascontiguousarray(
                    np.broadcast_to(given, (len(rows), *given.shape[1:])), np.float32)
            out.append(self.decoder.run(["x"], feeds)[0])
        return np.concatenate(out).astype(np.float32)

    def decode(self, ws: F32) -> F32:
        """Images [n, 3, H, W] in [0, 1] of ws (const noise)."""
        return to_unit_range(self.decode_raw(ws), OUTPUT_RANGE)

    def sample(self, z: F32) -> F32:
        """Images of prior latents z (ψ = 1)."""
        return self.decode(self.broadcast(self.map(z)))
