"""The VAE training loop shared by the shipped generators: β-VAE objective with an optional
capacity schedule (Burgess et al. 2018), seeded data order, rich progress bar. Example::

    objective = Objective(beta=10.0, capacity_nats=25.0)
    log = fit_vae(vae, images_u8, None, epochs=2, objective=objective, seed=0, levels=16)
    log.seconds, log.final_loss
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn


class VAEModule(Protocol):
    """What fit_vae needs: encode → (μ, log σ²), decode → logits; both take optional labels."""

    latent_dim: int

    def encode(self, x: Tensor, *cond: Tensor) -> tuple[Tensor, Tensor]: ...
    def decode_logits(self, z: Tensor, *cond: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Objective:
    """Per-item loss = BCE summed over pixels + β · |KL − C(t)|.

    C(t) ramps linearly from 0 to `capacity_nats` over the first `capacity_ramp` of the steps
    (Burgess et al. 2018: information is let in gradually, most useful factors first);
    capacity_nats = 0 gives the plain β-VAE loss BCE + β · KL.
    """

    beta: float = 4.0
    capacity_nats: float = 0.0
    capacity_ramp: float = 0.8

    def capacity(self, progress: float) -> float:
        """C at a point of training (progress in [0, 1])."""
        if self.capacity_nats <= 0.0:
            return 0.0
        return self.capacity_nats * min(1.0, progress / max(self.capacity_ramp, 1e-9))

    def describe(self) -> str:
        """One line for provenance, e.g. 'BCE + 10·|KL − C|, C 0 → 25 nats over 80% of steps'."""
        if self.capacity_nats <= 0.0:
            return f"BCE + {self.beta:g}·KL"
        return (
            f"BCE + {self.beta:g}·|KL − C|, C 0 → {self.capacity_nats:g} nats over "
            f"{self.capacity_ramp:.0%} of steps"
        )


@dataclass
class TrainLog:
    """What a training run did: seconds, steps, and per-epoch mean losses."""

    seconds: float = 0.0
    steps: int = 0
    epoch_loss: list[float] = field(default_factory=list)
    epoch_recon: list[float] = field(default_factory=list)
    epoch_kl: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.epoch_loss[-1] if self.epoch_loss else math.nan


def vae_terms(
    model: VAEModule, x: Tensor, cond: tuple[Tensor, ...], generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """(BCE summed over pixels, KL(q(z|x) ‖ N(0, I))), each averaged over the batch."""
    mu, logvar = model.encode(x, *cond)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    z = mu + eps * torch.exp(0.5 * logvar)
    logits = model.decode_logits(z, *cond)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
    return recon, kl


def fit_vae(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | None,
    *,
    epochs: int,
    objective: Objective,
    seed: int,
    levels: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = True,
    description: str = "training",
    on_epoch: Callable[[int, TrainLog], None] | None = None,
) -> TrainLog:
    """Train `model` (a VAEModule) in place on images [M, 1, H, W] (+ int64 labels [M]).

    uint8 images are divided by `levels` to get [0, 1] values; float images are used as they
    are. Data order and reparameterisation noise come from `seed`. `on_epoch(epoch, log)` is
    called after each epoch (the model is in training mode there).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images: expected a non-empty [M, C, H, W] tensor, got {tuple(images.shape)}"
        )
    if labels is not None and labels.shape != (images.shape[0],):
        raise ValueError(f"labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    vae: VAEModule = model  # type: ignore[assignment]
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    total = epochs * math.ceil(images.shape[0] / batch_size)

    def step(idx: Tensor, at: int) -> tuple[Tensor, Tensor, Tensor]:
        x = images[idx]
        x = x.float() / levels if x.dtype == torch.uint8 else x.float()
        x = x.contiguous(memory_format=torch.channels_last)
        cond = () if labels is None else (labels[idx],)
        recon, kl = vae_terms(vae, x, cond, gen)
        capacity = objective.capacity(at / max(total - 1, 1))
        return recon + objective.beta * (kl - capacity).abs(), recon, kl

    log = run_epochs(step, [optimiser], images.shape[0], epochs=epochs, batch_size=batch_size,
                     generator=gen, progress=progress, description=description,
                     on_epoch=on_epoch)  # fmt: skip
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.eval()
    return log


Step = Callable[[Tensor, int], tuple[Tensor, Tensor, Tensor]]
"""(batch indices, step number) → (loss, first term, second term) of one training step."""


def run_epochs(
    step: Step,
    optimisers: list[torch.optim.Optimizer],
    n: int,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    progress: bool,
    description: str,
    terms: tuple[str, str] = ("recon", "kl"),
    schedulers: list[torch.optim.lr_scheduler.LRScheduler] | None = None,
    on_epoch: Callable[[int, TrainLog], None] | None = None,
) -> TrainLog:
    """The epoch loop every training run shares: a seeded permutation per epoch, one optimiser
    step per batch (failing on a non-finite loss), per-epoch mean losses, a progress bar."""
    steps_per_epoch = math.ceil(n / batch_size)
    log = TrainLog()
    start = time.perf_counter()
    with _progress(progress) as bar:
        task = bar.add_task(description, total=epochs * steps_per_epoch, info="")
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator)
            sums = torch.zeros(3, dtype=torch.float64)
            for b in range(steps_per_epoch):
                loss, first, second = step(order[b * batch_size : (b + 1) * batch_size],
                                           log.steps)  # fmt: skip
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{description}: loss is not finite at step {log.steps}"
                    )
                for opt in optimisers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                for opt in optimisers:
                    opt.step()
                for sched in schedulers or []:
                    sched.step()
                log.steps += 1
                sums += torch.tensor([loss.item(), first.item(), second.item()],
                                     dtype=torch.float64)  # fmt: skip
                bar.update(task, advance=1, info=f"loss {loss.item():.1f} {terms[0]} "
                           f"{first.item():.3g} {terms[1]} {second.item():.3g}")  # fmt: skip
            means = (sums / steps_per_epoch).tolist()
            log.epoch_loss.append(means[0])
            log.epoch_recon.append(means[1])
            log.epoch_kl.append(means[2])
            bar.update(task, info=f"epoch {epoch + 1}/{epochs} loss {means[0]:.1f}")
            if on_epoch is not None:
                on_epoch(epoch, log)
    log.seconds = time.perf_counter() - start
    return log


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not enabled,
    )
