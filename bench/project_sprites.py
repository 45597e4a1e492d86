"""Sprites drawn by another routine (PIL polygons, the parametric heart): does the shipped
sprites-vae encoder, and Project, read their class and orientation?

    .venv/bin/python -m bench.project_sprites --per-shape 100 --project-per-shape 10

Class: the label whose reconstruction fits best (encoder: encode with each label, decode;
Project: the label it picks). Orientation: the latent's orientation factor (u = frac(s / 2 +
1/2) of axis 1, angle u · 2π/k for symmetry order k) against the drawn angle, circular error
within one symmetry period, in degrees. Writes `bench/results/project_sprites.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.project_data import other_sprites
from bench.scenarios.project import _lease
from latentserve.core.arrays import F32, I64
from latentserve.service import projection_loss as pl
from latentserve.service.projection import Plan, Projection

ORDER = np.array([4, 2, 1])
SHAPES = ("square", "ellipse", "heart")
OUT = Path(__file__).resolve().parent / "results" / "project_sprites.json"


def _angle_error(z: F32, labels: I64, theta: np.ndarray) -> np.ndarray:
    period = 2 * np.pi / ORDER[labels]
    got = np.mod(z[:, 1] / 2.0 + 0.5, 1.0) * period
    diff = np.mod(got - theta, period)
    err: np.ndarray = np.degrees(np.minimum(diff, period - diff))
    return err


async def main(per_shape: int, project_per_shape: int, steps: int) -> dict[str, Any]:
    lease = await _lease("sprites-vae")
    n = 3 * per_shape
    images, labels = other_sprites(n * 3, seed=21)
    keep = np.concatenate([np.flatnonzero(labels == k)[:per_shape] for k in range(3)])
    images, labels = images[keep], labels[keep]
    theta = _drawn_angles(n * 3, 21)[keep]  # replays other_sprites' draws
    k = 3
    tiled = np.repeat(images, k, axis=0)
    all_labels = np.tile(np.arange(k), len(images))
    z_all = await lease.backend.encode(tiled, all_labels)
    rec = await lease.backend.decode(z_all, all_labels)
    losses = pl.loss(rec, tiled).reshape(len(images), k)
    enc_class = losses.argmin(axis=1)
    z_enc = await lease.backend.encode(images, labels)  # true label: orientation only
    enc_err = _angle_error(z_enc, labels, theta)
    proj_z, proj_labels = [], []
    chosen = np.concatenate([np.flatnonzero(labels == k)[:project_per_shape] for k in range(3)])
    for lo in range(0, len(chosen), 16):
        run = Projection(lease, images[chosen[lo:lo + 16]], None, Plan(steps=steps))
        async for snap in run.run():
            if snap.done:
                proj_z.append(snap.latents)
                assert snap.labels is not None
                proj_labels.append(snap.labels)
    pz, plab = np.concatenate(proj_z), np.concatenate(proj_labels)
    proj_err = _angle_error(pz, labels[chosen], theta[chosen])
    out: dict[str, Any] = {"per_shape": per_shape, "project_per_shape": project_per_shape,
                           "project_steps": steps, "shapes": {}}
    for s, name in enumerate(SHAPES):
        sel = labels == s
        psel = labels[chosen] == s
        right = plab[psel] == s
        out["shapes"][name] = {
            "encoder_class_accuracy": float(np.mean(enc_class[sel] == s)),
            "project_class_accuracy": float(np.mean(right)),
            "encoder_orientation_error_deg_mean": float(np.mean(enc_err[sel])),
            "encoder_orientation_within_10deg": float(np.mean(enc_err[sel] <= 10)),
            "project_orientation_error_deg_mean": float(np.mean(proj_err[psel][right]))
            if right.any() else float("nan"),
            "project_orientation_within_10deg": float(np.mean(proj_err[psel] <= 10)),
        }
    await lease.backend.unload()
    return out


def _drawn_angles(n: int, seed: int) -> np.ndarray:
    """The angles `other_sprites(n, seed)` drew (same generator calls, in order)."""
    rng = np.random.default_rng(seed)
    rng.integers(0, 3, n)
    theta = np.empty(n)
    for i in range(n):
        rng.uniform(0.5, 1.0)
        theta[i] = rng.uniform(0, 2 * np.pi)
        rng.uniform(0, 1, 2)
    return theta


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-shape", type=int, default=20)
    parser.add_argument("--project-per-shape", type=int, default=10,
                        help="how many of them Project also projects (the first per shape)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    result = asyncio.run(main(args.per_shape, args.project_per_shape, args.steps))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
