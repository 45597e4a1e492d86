"""A bundle's networks in onnxruntime with the service's latent math: what evaluations use so
their numbers are those of the served model. Example::

    gen = OnnxGenerator(load_bundle(Path("generators/zoo/sprites-vae")))
    z = gen.seed_latents([1, 2, 3])                  # item 0 of Sample(seed = s) per seed
    images = gen.decode(z, labels=[0, 1, 2])
    sweep = gen.edit(z, [0, 1, 2], "scale", [-1.0, 0.0, 1.0], conditional_on=["pos_y"])

Latents are in the bundle's editing space: for a two-stage generator seeds draw z and the
mapping takes it to W (as the service's Sample does, before any truncation); decode, encode
and edit work on W codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from latentserve.core import latent_ops, layer_ops, seeding
from latentserve.core.arrays import F32, I64
from latentserve.registry.bundle import feeds as fd
from latentserve.registry.bundle.files import Bundle


def cpu_session(source: Path | bytes, *, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session of an ONNX file (or its bytes) for offline work (building,
    measuring, discovering directions): `threads` intra-op threads (0: one per core), one
    inter-op thread. The service's sessions are made by its embedded backend."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxGenerator:
    """Decode, encode, sample and edit a bundle the way the embedded backend does."""

    def __init__(self, bundle: Bundle, *, threads: int = 2) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        root = bundle.root
        self._decoder = cpu_session(root / self.spec.decoder.file, threads=threads)
        enc, mapping = self.spec.encoder, self.spec.mapping
        self._encoder = None if enc is None else cpu_session(root / enc.file, threads=threads)
        self._mapping = (None if mapping is None
                         else cpu_session(root / mapping.file, threads=threads))
        self._batch = self.spec.max_batch_size
        default = fd.default_noise(self.spec)
        self.noise = fd.NoiseChoice("const") if default.mode == "seeded" else default
        """Noise of a decoder with noise inputs: the bundle's default, except that seeded noise
        is measured as const noise (the same for every row, so a decode does not depend on how
        rows are split into calls)."""

    @property
    def latent_dim(self) -> int:
        """Size of z, what seeds draw."""
        return self.spec.latent_dim

    @property
    def editing_dim(self) -> int:
        """Size of the latents decode/edit take and encode returns (W for two-stage)."""
        return self.spec.editing_dim

    def to_editing_space(self, z: npt.ArrayLike) -> F32:
        """Prior latents z [n, latent_dim] in the editing space: mapping(z) for a two-stage
        generator, z itself otherwise."""
        zz = np.asarray(z, np.float32)
        mapping = self.spec.mapping
        if self._mapping is None or mapping is None or len(zz) == 0:
            return zz if mapping is None else np.zeros((0, self.spec.row_dim), np.float32)
        return fd.mapping_rows(self.spec, self._run(
            self._mapping, mapping.input, fd.shaped(zz, self.spec.prior_shape), None, None,
            mapping.output))

    def seed_latents(self, seeds: Sequence[int]) -> F32:
        """Item 0 of Sample(seed = s) for each seed (the service's keyframe/base rule), in the
        editing space."""
        return self.to_editing_space(
            fd.prior_rows(self.spec, seeding.seed_latents(seeds, self.latent_dim)))

    def sample_latents(self, seed: int, n: int) -> F32:
        """The latents of Sample(seed, n) (no truncation), in the editing space."""
        return self.to_editing_space(
            fd.prior_rows(self.spec, seeding.sample_latents(seed, n, self.latent_dim)))

    def decode(self, z: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> F32:
        """Latents [n, editing_dim] (+ class labels [n]) → images [n, C, H, W]."""
        dec = self.spec.decoder
        zz = np.asarray(z, np.float32)
        if len(zz) == 0:
            return np.zeros((0, *self.spec.output.shape), np.float32)
        noise = fd.noise_feeds(self.spec, self.noise, range(len(zz)))
        return self._run(self._decoder, dec.input, fd.shaped(zz, self.spec.editing_shape),
                         dec.condition_input, self._labels(labels, len(zz)), dec.output,
                         noise)  # fmt: skip

    def encode(self, x: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> F32:
        """Images [n, C, H, W] (+ class labels [n]) → posterior means [n, editing_dim]."""
        enc = self.spec.encoder
        if self._encoder is None or enc is None:
            raise ValueError(f"{self.spec.name} has no encoder")
        xx = np.asarray(x, np.float32)
        return fd.encoder_rows(self.spec, self._run(
            self._encoder, enc.input, xx, enc.condition_input, self._labels(labels, len(xx)),
            enc.output_mean))  # fmt: skip

    def _run(self, session: ort.InferenceSession, name: str, x: F32, label_name: str | None,
             labels: I64 | None, output: str,
             extra: dict[str, F32] | None = None) -> F32:  # fmt: skip
        """One output of a session over x (+ labels, + `extra` row-aligned feeds such as noise)
        in max_batch_size chunks."""
        out = []
        for lo in range(0, len(x), self._batch):
            feed: dict[str, np.ndarray] = {name: x[lo : lo + self._batch]}
            for key, value in (extra or {}).items():
                feed[key] = value[lo : lo + self._batch]
            if label_name is not None and labels is not None:
                feed[label_name] = labels[lo : lo + self._batch]
            out.append(np.asarray(session.run([output], feed)[0], np.float32))
        return np.concatenate(out)

    def edit_latents(self, bases: npt.ArrayLike, direction: str, strengths: Sequence[float],
                     conditional_on: Sequence[str] = (),
                     layers: tuple[int, int] | None = None) -> F32:  # fmt: skip
        """Edit rows [B·S, row_dim] (base-major), as EditRequest with direction_name (W+: on
        `layers`, default the direction's own range, else all layers)."""
        found = self.bundle.directions[direction]
        vector = found.vector
        held = [self.bundle.directions[h].vector for h in conditional_on]
        if held:
            vector = latent_ops.orthogonalize(vector, held)
        if self.spec.num_ws:  # W+: the W direction on its layer range (default: its own)
            span = layers if layers is not None else found.spec.layers
            return layer_ops.edit_layers(bases, self.spec.num_ws, vector, np.asarray(strengths),
                                         found.sigma, span)
        return latent_ops.edit_latents(bases, vector, np.asarray(strengths), found.sigma)

    def edit(self, bases: npt.ArrayLike, labels: npt.ArrayLike | None, direction: str,
             strengths: Sequence[float], conditional_on: Sequence[str] = ()) -> F32:  # fmt: skip
        """Edited images [B, S, C, H, W] (labels: one per base)."""
        z = np.asarray(bases, np.float32)
        rows = self.edit_latents(z, direction, strengths, conditional_on)
        y = None if labels is None else np.repeat(np.asarray(labels, np.int64), len(strengths))
        images = self.decode(rows, y)
        return images.reshape(len(z), len(strengths), *images.shape[1:])

    def _labels(self, labels: npt.ArrayLike | None, n: int) -> I64 | None:
        if self.spec.condition is None:
            return None
        if labels is None:
            raise ValueError(f"{self.spec.name} is conditional: labels are required")
        y = np.asarray(labels, np.int64)
        return np.full(n, int(y), np.int64) if y.ndim == 0 else y
