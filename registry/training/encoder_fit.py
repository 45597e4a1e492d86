"""Fit an amortised encoder to any bundle (`latentserve bundle fit-encoder DIR`, [train] extra).

Trains on (w, G(w)) pairs drawn fresh every step: prior samples mapped to the editing space
and decoded by the bundle's own ONNX files in ONNX Runtime (so it works for ONNX-only
bundles), with augmentation (sub-pixel shifts, contrast/brightness jitter, pixel noise) so it
also reads pictures the generator did not draw exactly. The network is a strided CNN (plus a
label embedding for conditional models) regressing the editing-space latent (canonical on
circular factors), normalised by the prior's spread. It is exported to `encoder.onnx`; the
bundle records the torch ↔ ONNX parity and the Encode → Decode reconstruction measured on
held-out generated images. Example::

    report = fit_encoder(Path("bundles/dcgan"), FitOptions(steps=2000))
    report.psnr_db, report.parity

This module imports torch: only the [train] CLI imports it, never the service.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentserve.core import circular
from latentserve.core.arrays import F32, I64
from latentserve.registry.bundle.files import Bundle, load_bundle, write_bundle
from latentserve.registry.bundle.spec import PREVIEW_FILE, BundleSpec, EncoderSpec
from latentserve.registry.quality.onnx_generator import OnnxGenerator, cpu_session

PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FitOptions:
    """How an encoder is fitted."""

    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    width: int = 32
    seed: int = 0
    augment: bool = True
    eval_samples: int = 256
    threads: int = 1


@dataclass(frozen=True)
class FitReport:
    """What fitting measured (also written to the bundle's metrics)."""

    bundle: Bundle
    psnr_db: float
    latent_mse: float
    parity: float
    seconds: float


class Encoder(nn.Module):
    """Strided CNN: image [B, C, H, W] in the output range (+ label [B]) → latent mean [B, D]."""

    lo: Tensor
    span: Tensor
    scale: Tensor
    centre: Tensor

    def __init__(self, channels: int, size: tuple[int, int], out_dim: int, *,
                 value_range: tuple[float, float], num_classes: int = 0, width: int = 32,
                 spread: F32 | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, h, w = channels, *size
        k = width
        while min(h, w) > 4:
            layers += [nn.Conv2d(c, k, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, h, w, k = k, h // 2, w // 2, min(k * 2, 8 * width)
        self.body = nn.Sequential(*layers)
        hidden = 8 * width
        self.fc = nn.Linear(c * h * w, hidden)
        self.label = nn.Embedding(num_classes, hidden) if num_classes else None
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                  nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))
        lo, hi = value_range
        self.register_buffer("lo", torch.tensor(float(lo)))
        self.register_buffer("span", torch.tensor(float(hi - lo)))
        scale = np.ones(out_dim, np.float32) if spread is None else spread
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))
        self.register_buffer("centre", torch.zeros(out_dim))

    def normalised(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        """The latent in units of the prior's spread around its centre (what training fits)."""
        h = self.fc(self.body((x - self.lo) / self.span * 2.0 - 1.0).flatten(1))
        if self.label is not None and label is not None:
            h = h + self.label(label)
        out: Tensor = self.head(h)
        return out

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        return self.centre + self.scale * self.normalised(x, label)


def _augment(x: Tensor, value_range: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Random sub-pixel shifts (±1.5 px), contrast and brightness jitter (±8 %, ±4 % of the
    range) and pixel noise (1 % of the range), clamped to the range."""
    n = len(x)
    lo, hi = value_range
    span = hi - lo
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 3.0
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shift[:, 0] * 2.0 / x.shape[-1]
    theta[:, 1, 2] = shift[:, 1] * 2.0 / x.shape[-2]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - lo, grid, padding_mode="zeros", align_corners=False) + lo
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.16
    bright = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.08 * span
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    out = (moved - mean) * contrast + mean + bright
    out = out + torch.randn(out.shape, generator=gen) * 0.01 * span
    return out.clamp(lo, hi)


class _Pairs:
    """(latent, image, label) batches from the bundle's prior and its ONNX decoder."""

    def __init__(self, gen: OnnxGenerator, spec: BundleSpec, seed: int) -> None:
        self.gen = gen
        self.spec = spec
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7C]))
        self.turns = np.asarray([c.turn for c in spec.circular], np.float64)
        self.centre = (np.asarray(spec.truncation_center, np.float32)
                       if spec.truncation_center is not None
                       else np.full(spec.editing_dim, spec.prior.mean, np.float32))

    def draw(self, n: int) -> tuple[F32, F32, I64 | None]:
        eps = self.rng.standard_normal((n, self.spec.latent_dim)).astype(np.float32)
        z = (self.spec.prior.mean + self.spec.prior.scale * eps).astype(np.float32)
        rows = self.gen.to_editing_space(z)
        labels = (self.rng.integers(0, self.spec.num_classes, n).astype(np.int64)
                  if self.spec.condition is not None else None)
        images = self.gen.decode(rows, labels)
        target = rows[:, :self.spec.editing_dim]  # W+: the encoder predicts w (broadcast)
        if len(self.turns):
            target = circular.canonical(target, self.turns, self.centre)
        return target.astype(np.float32), images.astype(np.float32), labels


def fit_encoder(root: Path, options: FitOptions = FitOptions()) -> FitReport:
    """Fit, export and attach an encoder to the bundle at `root` (replacing any encoder)."""
    started = time.perf_counter()
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    bundle = load_bundle(root)
    spec = bundle.spec
    gen = OnnxGenerator(bundle, threads=options.threads)
    pairs = _Pairs(gen, spec, options.seed)
    probe, _, _ = pairs.draw(512)
    spread = np.maximum(probe.std(axis=0), 1e-3).astype(np.float32)
    channels, height, width = spec.output.shape
    model = Encoder(channels, (height, width), spec.editing_dim, value_range=spec.output.range,
                    num_classes=spec.num_classes, width=options.width, spread=spread)
    model.centre.copy_(torch.as_tensor(pairs.centre))
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr,
                                                total_steps=max(options.steps, 1))
    aug_gen = torch.Generator().manual_seed(options.seed)
    centre, scale = model.centre, model.scale
    model.train()
    for _ in range(options.steps):
        w, x, labels = pairs.draw(options.batch)
        xt = torch.from_numpy(x)
        if options.augment:
            xt = _augment(xt, spec.output.range, aug_gen)
        lt = None if labels is None else torch.from_numpy(labels)
        target = (torch.from_numpy(w) - centre) / scale
        loss = F.mse_loss(model.normalised(xt, lt), target)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
    model.eval()
    onnx_bytes, parity = _export(model, spec)
    enc_spec = EncoderSpec(file="encoder.onnx", input="x", output_mean="mu",
                           output_logvar=None,
                           condition_input="label" if spec.condition is not None else None)
    psnr, latent_mse = _measure(onnx_bytes, enc_spec, gen, spec, options)
    seconds = time.perf_counter() - started
    metrics = {"encoder_fit_psnr_db": psnr, "encoder_fit_latent_mse": latent_mse,
               "encoder_onnx_parity_max_abs_diff": parity,
               "encoder_fit_steps": float(options.steps), "encoder_fit_seconds": seconds}
    notes = {
        "encoder_fit_psnr_db": f"Encode → Decode PSNR (dB, peak = output range) on "
        f"{options.eval_samples} held-out generated images (prior samples, own seed)",
        "encoder_fit_latent_mse": "mean squared error of encoded latents vs the true ones "
        "(canonical circular factors), in units of the prior's spread per coordinate",
        "encoder_onnx_parity_max_abs_diff": "max |torch − onnxruntime| of the fitted encoder",
        "encoder_fit_steps": f"Adam steps of {options.batch} fresh (w, G(w)) pairs decoded "
        f"by ONNX Runtime{', augmented' if options.augment else ''}",
        "encoder_fit_seconds": "wall time of fitting, exporting and measuring (CPU)",
    }
    new = spec.model_copy(update={
        "encoder": enc_spec,
        "metrics": {**spec.metrics, **{k: float(f"{v:.6g}") for k, v in metrics.items()}},
        "metric_notes": {**spec.metric_notes, **notes}})
    preview = bundle.root / PREVIEW_FILE
    written = write_bundle(
        bundle.root, BundleSpec.parse(new.model_dump(mode="json")),
        decoder=bundle.decoder_path, mapping=bundle.mapping_path, encoder=onnx_bytes,
        directions={n: (d.vector, d.sigma) for n, d in bundle.directions.items()},
        preview_png=preview.read_bytes() if preview.is_file() else None)
    return FitReport(written, psnr, latent_mse, parity, seconds)


def _export(model: Encoder, spec: BundleSpec) -> tuple[bytes, float]:
    """ONNX bytes of the encoder (dynamic batch) and max |torch − ORT| on 64 images."""
    channels, height, width = spec.output.shape
    rng = np.random.default_rng(1)
    lo, hi = spec.output.range
    x = (lo + (hi - lo) * rng.random((64, channels, height, width))).astype(np.float32)
    conditional = spec.condition is not None
    labels = rng.integers(0, max(spec.num_classes, 1), 64).astype(np.int64)
    args: tuple[Tensor, ...] = (torch.from_numpy(x),) + (
        (torch.from_numpy(labels),) if conditional else ())
    names = ["x", "label"] if conditional else ["x"]
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf,  # type: ignore[arg-type]
                      input_names=names, output_names=["mu"],
                      dynamic_axes={n: {0: "batch"} for n in [*names, "mu"]},
                      opset_version=17, dynamo=False)
    data = buf.getvalue()
    with torch.no_grad():
        want = model(*args).numpy()
    feeds = {"x": x} | ({"label": labels} if conditional else {})
    got = cpu_session(data, threads=1).run(["mu"], feeds)[0]
    parity = float(np.abs(got - want).max())
    if not parity <= PARITY_TOLERANCE:
        raise RuntimeError(f"encoder torch ↔ ONNX parity {parity:.3g} exceeds "
                           f"{PARITY_TOLERANCE}")
    return data, parity


def _measure(onnx_bytes: bytes, enc: EncoderSpec, gen: OnnxGenerator, spec: BundleSpec,
             options: FitOptions) -> tuple[float, float]:
    """Encode → Decode PSNR and latent error on held-out generated images."""
    held = _Pairs(gen, spec, options.seed + 7919)
    w, x, labels = held.draw(options.eval_samples)
    session = cpu_session(onnx_bytes, threads=options.threads)
    feeds = {enc.input: x} | ({"label": labels} if labels is not None else {})
    mu = np.asarray(session.run([enc.output_mean], feeds)[0], np.float32)
    rows = mu if spec.row_dim == spec.editing_dim else np.tile(mu, spec.row_dim // len(mu[0]))
    recon = gen.decode(rows, labels)
    lo, hi = spec.output.range
    mse = np.mean(((recon - x) / (hi - lo)) ** 2, axis=(1, 2, 3))
    psnr = float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))))
    spread = np.maximum(w.std(axis=0), 1e-3)
    latent_mse = float(np.mean(((mu - w) / spread) ** 2))
    if not math.isfinite(psnr):
        raise RuntimeError("the fitted encoder's reconstructions are not finite")
    return psnr, latent_mse
