"""Training of the factor-aligned generators: the decoder fits renders of prior latents by
maximum likelihood (per-pixel Bernoulli), the encoder regresses the latents' head targets on
the same renders (amortised inference on samples of the generative process, the sleep phase
of wake-sleep); an optional polish then fine-tunes the decoder alone with a gradient-difference
term that draws the corners per-pixel likelihood rounds. Example::

    data = FactorData(latents, labels, images_u8, layout)
    log = fit_factor_model(decoder, encoder, data, epochs=6, seed=0)
    polish_decoder(decoder, fresh_data, epochs=2, seed=0, lr=3e-4, edge_weight=1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentserve.core.arrays import F32, F64, I64, U8
from latentserve.generators.factor_latent import FactorLatent
from latentserve.generators.factor_models import FactorEncoder
from latentserve.generators.training import TrainLog, run_epochs


@dataclass(frozen=True)
class FactorData:
    """Training pairs: latents [M, N], class labels [M], renders uint8 [M, C, H, W] (÷ 255)."""

    latents: F64
    labels: I64
    images: U8
    layout: FactorLatent

    def __post_init__(self) -> None:
        m = len(self.latents)
        if self.labels.shape != (m,) or len(self.images) != m or self.images.ndim != 4:
            raise ValueError(
                f"latents {self.latents.shape}, labels {self.labels.shape} and images "
                f"{self.images.shape} must describe the same M items"
            )

    def head_targets(self) -> F32:
        """The encoder's regression targets [M, feature_dim]."""
        return self.layout.head_targets(self.layout.quantiles(self.latents)).astype(np.float32)


class _DecoderFit:
    """What training and the polish share: the data as tensors, Adam on `params` with cosine
    decay to lr / 20 over the run's steps, and one batch's target, decoding and BCE."""

    def __init__(self, decoder: nn.Module, data: FactorData, params: list[nn.Parameter], *,
                 epochs: int, batch_size: int, lr: float) -> None:  # fmt: skip
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.decoder = decoder
        self.images = torch.from_numpy(data.images)
        self.labels = torch.from_numpy(data.labels.astype(np.int64))
        self.latents = torch.from_numpy(data.latents.astype(np.float32))
        self.optimiser = torch.optim.Adam(params, lr=lr)
        total = epochs * math.ceil(len(data.images) / batch_size)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimiser, T_max=total,
                                                                   eta_min=lr / 20)  # fmt: skip

    def reconstruct(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(target x in [0, 1], decoded x̂ clamped off 0 and 1, BCE summed per item)."""
        x = self.images[idx].float() / 255.0
        x_hat = self.decoder(self.latents[idx], self.labels[idx]).clamp(1e-6, 1.0 - 1e-6)
        return x, x_hat, F.binary_cross_entropy(x_hat, x, reduction="sum") / len(idx)


def fit_factor_model(
    decoder: nn.Module,
    encoder: FactorEncoder,
    data: FactorData,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    progress: bool = True,
    description: str = "training",
) -> TrainLog:
    """Train decoder and encoder in place (Adam, cosine learning-rate decay); both see the
    same seeded batches. Loss = BCE summed over pixels + squared error of the encoder head."""
    fit = _DecoderFit(decoder, data, [*decoder.parameters(), *encoder.parameters()],
                      epochs=epochs, batch_size=batch_size, lr=lr)  # fmt: skip
    targets = torch.from_numpy(data.head_targets())
    decoder.train()
    encoder.train()

    def step(idx: Tensor, _at: int) -> tuple[Tensor, Tensor, Tensor]:
        x, _, recon = fit.reconstruct(idx)
        head_err = (encoder.head(x, fit.labels[idx]) - targets[idx]).pow(2).sum(1).mean()
        return recon + head_err, recon, head_err

    log = run_epochs(step, [fit.optimiser], len(data.images), epochs=epochs,
                     batch_size=batch_size, generator=torch.Generator().manual_seed(seed),
                     progress=progress, description=description, terms=("recon", "head"),
                     schedulers=[fit.schedule])  # fmt: skip
    decoder.eval()
    encoder.eval()
    return log


def gradient_difference(x_hat: Tensor, x: Tensor) -> Tensor:
    """The gradient-difference loss (Mathieu et al. 2016, L1): |horizontal and vertical
    neighbour differences of `x_hat` − those of `x`|, summed over pixels, averaged over items.
    It charges every edge pixel whose step is missing, which per-pixel likelihood barely does
    for a corner that covers a few pixels."""
    dx = (x_hat[..., :, 1:] - x_hat[..., :, :-1]) - (x[..., :, 1:] - x[..., :, :-1])
    dy = (x_hat[..., 1:, :] - x_hat[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])
    return (dx.abs().sum() + dy.abs().sum()) / len(x)


def polish_decoder(
    decoder: nn.Module,
    data: FactorData,
    *,
    epochs: int,
    seed: int,
    lr: float,
    edge_weight: float,
    batch_size: int = 64,
    progress: bool = True,
    description: str = "polish",
) -> TrainLog:
    """Fine-tune a trained decoder alone in place (Adam, cosine decay to lr / 20) on `data`:
    loss = BCE summed over pixels + `edge_weight` × `gradient_difference`. Trained with that
    loss from the start, the shapes3d decoder drew cylinders' rims as corners; as a polish it
    sharpens corners and keeps the rest."""
    fit = _DecoderFit(decoder, data, list(decoder.parameters()), epochs=epochs,
                      batch_size=batch_size, lr=lr)  # fmt: skip
    decoder.train()

    def step(idx: Tensor, _at: int) -> tuple[Tensor, Tensor, Tensor]:
        x, x_hat, recon = fit.reconstruct(idx)
        edges = gradient_difference(x_hat, x)
        return recon + edge_weight * edges, recon, edges

    log = run_epochs(step, [fit.optimiser], len(data.images), epochs=epochs,
                     batch_size=batch_size, generator=torch.Generator().manual_seed(seed + 1),
                     progress=progress, description=description, terms=("recon", "edges"),
                     schedulers=[fit.schedule])  # fmt: skip
    decoder.eval()
    return log


def set_posterior_spread(encoder: FactorEncoder, images: F32, labels: I64, latents: F64) -> F64:
    """Set the encoder's constant logvar to log of each axis's squared error on held-out
    renders, robustly estimated (1.4826 × median |error|: a circular factor at its wrap-around
    point has two equally right latents far apart); returns that RMS error per axis."""
    with torch.no_grad():
        mu, _ = encoder(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))
    err = np.abs(mu.numpy().astype(np.float64) - latents)
    mse = np.maximum((1.4826 * np.median(err, axis=0)) ** 2, 1e-6)
    encoder.logvar.copy_(torch.from_numpy(np.log(mse).astype(np.float32)))  # type: ignore[operator]
    return np.asarray(np.sqrt(mse), np.float64)
