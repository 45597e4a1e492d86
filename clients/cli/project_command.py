"""`latentserve project`: find the latents of your own pictures (any model, encoder or not).

Streams the service's progress into a progress bar (loss per step), then writes the latents
as .npy and, with --recon, the reconstructions beside the targets as a PNG. Example::

    latentserve project heart.png --model sprites-vae --out z.npy --recon recon.png
    latentserve edit --model sprites-vae --latents z.npy --labels heart \\
        --direction orientation --strengths 0,1,2,3 --out turned.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentserve.cli import client_output as output
from latentserve.cli.client_commands import (
    Address,
    Json,
    Labels,
    Model,
    Timeout,
    _class_labels,
    _reporting,
)
from latentserve.client import Client
from latentserve.client.projection import Projection
from latentserve.client.transport import DEFAULT_ADDRESS

app = typer.Typer(help="Find the latents of your own pictures.", add_completion=False)
_out = Console()


@app.command("project")
def project(
    images: Annotated[list[Path], typer.Argument(help="Picture files (PNG, ...) to project.")],
    model: Model = "",
    labels: Labels = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Latents as .npy (one row per picture).")]
    = Path("latents.npy"),
    recon: Annotated[Path | None, typer.Option(
        "--recon", help="Also write targets (top row) and reconstructions (bottom) as PNG.")]
    = None,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Search steps (0: default).")]
    = 0,
    population: Annotated[int, typer.Option(
        "--population", min=0, help="Candidates per image and step (0: by latent size).")] = 0,
    search_timeout_s: Annotated[float, typer.Option(
        "--search-timeout-s", min=0.0, help="Stop refining after this long (0: no limit).")]
    = 0.0,
    init: Annotated[str, typer.Option(
        "--init", help="Start: auto (encoder if any, else prior), encoder or prior.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the search.")] = 0,
    resize: Annotated[bool, typer.Option(
        "--resize", help="Scale pictures of another size to the model's (refused otherwise).")]
    = False,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 300.0,
    as_json: Json = False,
) -> None:
    """Project pictures into a model's editing space; writes the latents as .npy.

    Without --labels a conditional model's best-fitting label is picked per picture (the JSON
    and the summary say which)."""
    if init not in ("auto", "encoder", "prior"):
        raise typer.BadParameter(f"--init must be auto, encoder or prior, got {init!r}")
    start: Literal["auto", "encoder", "prior"] = init  # type: ignore[assignment]
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        info = client.get_model(model)
        pixels = output.read_images(images, info.output_shape, resize=resize)
        options: dict[str, Any] = {
            "class_labels": class_labels, "steps": steps, "population": population,
            "search_timeout_s": search_timeout_s, "seed": seed, "init": start,
            "output": "uint8"}
        if as_json:
            result = client.project(info.model, pixels, **options)
        else:
            result = _with_bar(client, info.model, pixels, options)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, result.latents)
        if recon is not None:
            _save_recon(recon, pixels, result)
    names = list(info.class_names)
    chosen = [names[i] if i < len(names) else str(i) for i in result.class_labels]
    if as_json:
        output.print_json({
            "out": str(out), "recon": str(recon) if recon else None,
            "model": output.plain(result.model), "latents": result.latents.tolist(),
            "class_labels": result.class_labels, "class_names": chosen,
            "psnr": _floats(result.psnr), "ssim": _floats(result.ssim),
            "loss": result.loss.tolist(), "initial_loss": result.initial_loss.tolist(),
            "steps": result.step, "decodes": result.decodes, "stop": result.stop})
        return
    quality = ", ".join(f"{p:.1f} dB" for p in result.psnr if result.psnr is not None) \
        if result.psnr is not None else ""
    label_text = f"; labels {', '.join(chosen)}" if chosen else ""
    _out.print(f"wrote {out} ({len(result.latents)} latents, {result.model}; PSNR {quality}"
               f"{label_text}; {result.step} steps, {result.decodes} decodes, "
               f"stopped by {result.stop})", markup=False, highlight=False, soft_wrap=True)


def _with_bar(client: Client, model: Any, pixels: np.ndarray,
              options: dict[str, Any]) -> Projection:
    """Run the projection with a progress bar of steps and the mean loss."""
    with Progress(TextColumn("[bold]projecting"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("project", total=None, loss="-")

        def show(update: Projection) -> None:
            bar.update(task, total=update.steps, completed=update.step,
                       loss=f"{float(np.mean(update.loss)):.5f}")

        return client.project(model, pixels, on_progress=show, **options)


def _save_recon(path: Path, targets: np.ndarray, result: Projection) -> None:
    """Targets above reconstructions, one column per picture, as one PNG."""
    from PIL import Image

    recon = result.images
    if recon is None:
        raise ValueError("the service sent no reconstructions")
    both = np.concatenate([targets.astype(np.uint8), recon.astype(np.uint8)])
    n, channels, height, width = targets.shape
    grid = np.full((2 * height + 2, n * (width + 2), channels), 0, np.uint8)
    for i, img in enumerate(both):
        row, col = divmod(i, n)
        grid[row * (height + 2):row * (height + 2) + height,
             col * (width + 2):col * (width + 2) + width] = img.transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if channels == 1 else grid).save(path)


def _floats(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else [round(float(v), 4) for v in values]
