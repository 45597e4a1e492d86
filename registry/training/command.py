"""`latentserve bundle fit-encoder DIR`: the command (torch is imported only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentserve.core.errors import LatentServeError
from latentserve.registry.cli.registry import error_line


def fit_encoder_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder (rewritten in place).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = 3000,
    batch: Annotated[int, typer.Option("--batch", min=2, help="Fresh pairs per step.")] = 64,
    width: Annotated[int, typer.Option("--width", min=4, help="Channels of the first conv.")]
    = 32,
    lr: Annotated[float, typer.Option("--lr", min=1e-6, help="Peak learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of pairs and weights.")] = 0,
    augment: Annotated[bool, typer.Option(help="Shift/contrast/noise augmentation.")] = True,
    eval_samples: Annotated[int, typer.Option(
        "--eval-samples", min=1, help="Held-out generated images the PSNR is measured on.")]
    = 256,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads.")] = 1,
) -> None:
    """Fit an amortised encoder to any bundle (ONNX-only too) and add it as encoder.onnx.

    Trains on (w, G(w)) pairs decoded by the bundle's ONNX files, with augmentation; records
    the torch ↔ ONNX parity and the Encode → Decode PSNR in the bundle's metrics. Needs the
    [train] extra (torch)."""
    try:
        from latentserve.registry.training.encoder_fit import FitOptions, fit_encoder
    except ImportError as exc:
        error_line(f"fit-encoder needs torch: pip install 'latentserve[train]' ({exc})")
        raise typer.Exit(2) from None
    options = FitOptions(steps=steps, batch=batch, lr=lr, width=width, seed=seed,
                         augment=augment, eval_samples=eval_samples, threads=threads)
    try:
        report = fit_encoder(bundle_dir, options)
    except (LatentServeError, OSError, ValueError, RuntimeError) as exc:
        error_line(str(exc))
        raise typer.Exit(1) from None
    typer.echo(f"wrote {report.bundle.encoder_path} ({steps} steps, {report.seconds:.0f} s): "
               f"Encode → Decode PSNR {report.psnr_db:.2f} dB on {eval_samples} held-out "
               f"generated images, latent MSE {report.latent_mse:.3f} (prior σ units), "
               f"parity {report.parity:.2g}")
