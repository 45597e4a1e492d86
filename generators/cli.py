"""`latentserve train …`: train a shipped generator and write its complete bundle.

Mounted under the `latentserve` command as the `train` group, one sub-command per model (one
implementation, `train`)::

    latentserve train sprites-vae --out generators/zoo/sprites-vae --seed 0
    latentserve train digits-cvae --epochs 20 --out /tmp/digits
    latentserve train sprites-vae-encoder         # refit the shipped encoder alone
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.spec import BundleError


class Model(StrEnum):
    """The generators this project trains."""

    sprites_vae = "sprites-vae"
    shapes3d = "shapes3d"
    digits_cvae = "digits-cvae"
    stylish_shapes = "stylish-shapes"


app = typer.Typer(
    help="Train a shipped generator (CPU, fixed seed) and write its bundle.",
    no_args_is_help=True,
    add_completion=False,
)

_Out = Annotated[
    Path | None,
    typer.Option("--out", help="Bundle folder to write [default: generators/zoo/<model>]"),
]
_Epochs = Annotated[
    int | None, typer.Option("--epochs", min=1, help="Training epochs [default: the shipped run's]")
]
_Seed = Annotated[int, typer.Option("--seed", min=0, help="Seed of data, init and noise")]
_Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar")]
_Threads = Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")]
_Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", help="Save the trained networks here; a rerun with the same config and "
    "seed loads them and redoes only directions, export and measurement")]


def train(
    model: Model,
    out: Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    threads: int = 2,
    checkpoint: Path | None = None,
) -> Bundle:
    """Train `model`, write its bundle to `out`, print the metrics; exit code 1 on bad input.

    Before torch is first imported, OpenMP threads are told to sleep rather than spin while
    waiting (OMP_WAIT_POLICY=PASSIVE, unless set): on a shared 2-core machine spinning threads
    made training 2× slower.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    target = out if out is not None else Path("generators/zoo") / model.value
    try:
        if model is Model.sprites_vae:
            from latentserve.generators.factor_pipeline import FactorConfig
            from latentserve.generators.sprites_vae import train_sprites_vae

            sprites = FactorConfig(threads=threads)
            bundle = train_sprites_vae(target, epochs, seed, progress=not quiet, config=sprites,
                                       checkpoint=checkpoint)
        elif model is Model.shapes3d:
            from latentserve.generators.shapes3d_generator import CONFIG, train_shapes3d

            scenes = replace(CONFIG, threads=threads)
            bundle = train_shapes3d(target, epochs, seed, progress=not quiet, config=scenes,
                                    checkpoint=checkpoint)
        elif model is Model.stylish_shapes:
            from latentserve.generators.stylish_generator import CONFIG as STYLISH
            from latentserve.generators.stylish_generator import train_stylish

            gallery = Path("generators/gallery") if out is None else None
            bundle = train_stylish(target, epochs, seed, progress=not quiet,
                                   config=replace(STYLISH, threads=threads),
                                   checkpoint=checkpoint, gallery=gallery)
        else:
            if checkpoint is not None:
                raise ValueError("--checkpoint: digits-cvae trains in seconds and keeps none "
                                 "(sprites-vae and shapes3d do)")
            from latentserve.generators.digits_cvae import DigitsConfig, train_digits_cvae

            digits = DigitsConfig(threads=threads)
            bundle = train_digits_cvae(target, epochs, seed, progress=not quiet, config=digits)
    except (ValueError, BundleError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _report(bundle)
    return bundle


SUMMARIES = {
    Model.sprites_vae: "Shape-conditional sprites generator (latent = scale, orientation, pos_x, "
    "pos_y).",
    Model.shapes3d: "Object-conditional Shapes3D-spec scenes (RGB; latent = 3 hues, scale, "
    "orientation).",
    Model.digits_cvae: "Class-conditional VAE on scikit-learn digits (latent_dim 8, label input).",
    Model.stylish_shapes: "StyleGAN-like W+ generator of stylish shapes (RGB; 10 style layers, "
    "noise inputs; coarse = geometry, fine = colours). Retraining the shipped bundle also "
    "redraws its pictures in generators/gallery.",
}
"""The help line of each model's `train` sub-command."""


def _train_command(model: Model) -> Callable[..., None]:
    """The `latentserve train <model>` command: the options of `train`, for one model."""

    def command(out: _Out = None, epochs: _Epochs = None, seed: _Seed = 0, quiet: _Quiet = False,
                threads: _Threads = 2, checkpoint: _Checkpoint = None) -> None:
        train(model, out, epochs, seed, quiet, threads, checkpoint)

    return command


for _model in Model:
    app.command(_model.value, help=SUMMARIES[_model])(_train_command(_model))


@app.command("sprites-vae-encoder")
def sprites_vae_encoder(
    bundle: Annotated[Path, typer.Option("--bundle", help="The sprites-vae bundle to refit")]
    = Path("generators/zoo/sprites-vae"),
    start: Annotated[Path | None, typer.Option(
        "--start", help="encoder.onnx to fine-tune (default: the bundle's own); the shipped "
        "one started from the encoder `train sprites-vae` trains with the decoder")] = None,
    seed: _Seed = 0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")] = 1,
    quiet: _Quiet = False,
) -> None:
    """Fine-tune the sprites-vae encoder alone on data-spec renders and sprites drawn by other
    routines (decoder and directions kept); the same start, seed and threads give the same
    file."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from latentserve.generators.sprites_encoder import RefitConfig, refit_sprites_encoder

    try:
        written = refit_sprites_encoder(bundle, RefitConfig(threads=threads), seed,
                                        start=start, progress=not quiet)
    except (ValueError, BundleError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _report(written)


@app.command("report")
def report(
    readme: Annotated[Path, typer.Option("--readme", help="README to rewrite")] = Path("README.md"),
    gallery: Annotated[Path, typer.Option("--gallery", help="Folder for the pictures")] = Path(
        "generators/gallery"),
    zoo: Annotated[Path | None, typer.Option(
        "--zoo", help="Folder of the shipped bundles [default: generators/zoo]")] = None,
) -> None:
    """Rewrite the README's "Latent space, measured" section and redraw its pictures from the
    shipped bundles (numbers as the bundles recorded them, pictures decoded by onnxruntime)."""
    from latentserve.generators.latent_report import (
        ZOO,
        draw_pictures,
        replace_section,
        report_markdown,
    )

    where = zoo or ZOO
    try:
        text = replace_section(readme.read_text(encoding="utf-8"), report_markdown(where))
        readme.write_text(text, encoding="utf-8")
        files = draw_pictures(where, gallery)
    except (ValueError, BundleError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{readme}: section rewritten; {len(files)} pictures in {gallery}")


def _report(bundle: Bundle) -> None:
    table = Table(title=f"{bundle.spec.name} → {bundle.root}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in bundle.spec.metrics.items():
        table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    seconds = bundle.spec.provenance.get("train_seconds")
    console.print(
        f"trained in {seconds} s; {len(bundle.directions)} directions; {bundle.content_hash}"
    )


if __name__ == "__main__":
    app()
