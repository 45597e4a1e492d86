"""Training of the `stylish-shapes` mapping and synthesis networks: supervised on renders of
the prior, with style mixing at the coarse/fine crossover. Example::

    cfg = StylishConfig(epochs=1, epoch_steps=200)
    mapping, synthesis, log = fit_stylish(cfg, seed=0, log=print)

Each step draws z ~ N(0, I) and renders the image those latents stand for (the data set's
factors are functions of z). For a `mix_prob` share of the batch a second latent z₂ is drawn,
the coarse styles (layers < `crossover`) come from w(z) and the fine ones from w(z₂), and the
target is the render with z's geometry (shape, scale, orientation, position) and z₂'s
appearance (hues, stripes): style mixing with a known answer, so the coarse layers must carry
geometry and the fine ones appearance. The loss is the squared error on [-1, 1] pixels, object
pixels weighted 5×; noise inputs are drawn fresh each step (their learned strengths go where
the data wants: it has no stochastic detail). Adam with a cosine learning-rate decay.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentserve.generators.stylish_data import LATENT_DIM, factors_of, mixed_values, render
from latentserve.generators.stylish_measures import object_share
from latentserve.generators.stylish_model import NUM_WS, Mapping, Synthesis

OBJECT_WEIGHT = 4.0
CROSSOVER = 5
"""Styles [0, CROSSOVER) are coarse (4×4 … first 16×16 conv: geometry), the rest fine
(second 16×16 conv … ToRGB: appearance)."""


@dataclass(frozen=True)
class StylishConfig:
    """Everything that shapes a training run besides the seed."""

    epochs: int = 6
    epoch_steps: int = 500
    """Steps per epoch: the data is a stream of fresh renders, so an epoch is a step count."""
    batch_size: int = 16
    lr: float = 2e-3
    mix_prob: float = 0.5
    crossover: int = CROSSOVER
    channels: dict[int, int] = field(
        default_factory=lambda: {4: 64, 8: 64, 16: 48, 32: 24, 64: 12})
    threads: int = 2
    checkpoint_every: int = 250

    @property
    def steps(self) -> int:
        """Optimiser steps of the run."""
        return self.epochs * self.epoch_steps

    def run_key(self, seed: int) -> str:
        """What identifies a run's networks: the training fields and the seed."""
        fields = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                  "mix_prob": self.mix_prob, "crossover": self.crossover,
                  "channels": self.channels, "seed": seed}  # fmt: skip
        return json.dumps(fields, sort_keys=True)


@dataclass
class TrainLog:
    """Loss every `every` steps and the wall time the steps took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def mixed_batch(rng: np.random.Generator, cfg: StylishConfig) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(z₁, z₂, mixed mask [B], target images [-1, 1]) for one step."""
    n = cfg.batch_size
    z1 = rng.standard_normal((n, LATENT_DIM))
    z2 = rng.standard_normal((n, LATENT_DIM))
    mixed = rng.random(n) < cfg.mix_prob
    f1, f2 = factors_of(z1), factors_of(z2)
    values = np.where(mixed[:, None], mixed_values(f1, f2), f1)
    target = render(values) * 2.0 - 1.0
    return z1.astype(np.float32), z2.astype(np.float32), mixed, target


def weight_of(target: np.ndarray) -> torch.Tensor:
    """Per-pixel loss weight [B, 1, H, W]: 1 + OBJECT_WEIGHT × the pixel's object share, so the
    object (≈ 7 % of the pixels) is not drowned by the background."""
    share = object_share((target + 1.0) / 2.0)
    return torch.from_numpy((1.0 + OBJECT_WEIGHT * share[:, None]).astype(np.float32))


def styles(mapping: Mapping, z1: torch.Tensor, z2: torch.Tensor, mixed: torch.Tensor,
           crossover: int) -> torch.Tensor:  # fmt: skip
    """ws [B, NUM_WS, W_DIM]: w(z₁) everywhere, or w(z₂) from `crossover` on where mixed."""
    w1, w2 = mapping(z1), mapping(z2)
    fine = torch.where(mixed[:, None], w2, w1)
    layer = torch.arange(NUM_WS)[None, :, None]
    return torch.where(layer < crossover, w1[:, None], fine[:, None])


def fit_stylish(
    cfg: StylishConfig,
    seed: int,
    *,
    log: Callable[[str], None] | None = None,
    checkpoint: Path | None = None,
) -> tuple[Mapping, Synthesis, TrainLog]:
    """Train from scratch (seeded); with `checkpoint`, save the networks every
    `checkpoint_every` steps and at the end, and resume from a partial one of the same run."""
    torch.manual_seed(seed)
    mapping, synthesis = Mapping(), Synthesis(channels=cfg.channels)
    params = list(mapping.parameters()) + list(synthesis.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57]))
    noise_gen = torch.Generator().manual_seed(seed + 1)
    record = TrainLog()
    start_step = 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("run_key") != cfg.run_key(seed):
            raise ValueError(f"{checkpoint}: holds another run (config or seed differ)")
        mapping.load_state_dict(state["mapping"])
        synthesis.load_state_dict(state["synthesis"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        noise_gen.set_state(state["noise_gen"])
        record = state["log"]
        start_step = record.steps
    mapping.train()
    synthesis.train()
    started = time.perf_counter() - record.seconds
    running = 0.0
    for step in range(start_step, cfg.steps):
        z1, z2, mixed, target = mixed_batch(rng, cfg)
        ws = styles(mapping, torch.from_numpy(z1), torch.from_numpy(z2),
                    torch.from_numpy(mixed), cfg.crossover)  # fmt: skip
        out = synthesis(ws, *synthesis.noise_like(len(z1), generator=noise_gen))
        loss = (weight_of(target) * (out - torch.from_numpy(target)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running += float(loss.detach())
        done = step + 1
        if done % 50 == 0:
            record.losses.append(running / 50)
            running = 0.0
            if log is not None:
                log(f"step {done}/{cfg.steps} loss {record.losses[-1]:.5f} "
                    f"{time.perf_counter() - started:.0f} s")
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            record.steps = done
            record.seconds = time.perf_counter() - started
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"run_key": cfg.run_key(seed), "mapping": mapping.state_dict(),
                        "synthesis": synthesis.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                        "noise_gen": noise_gen.get_state(), "log": record},
                       checkpoint.with_suffix(".tmp"))  # fmt: skip
            checkpoint.with_suffix(".tmp").replace(checkpoint)
    record.steps = cfg.steps
    record.seconds = time.perf_counter() - started
    mapping.eval()
    synthesis.eval()
    return mapping, synthesis, record
