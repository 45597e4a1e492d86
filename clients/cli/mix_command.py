"""`latentserve mix`: StyleGAN's style-mixing figure from a W+ generator, as one PNG grid.

Row r, column c is row seed r's W+ latent with the layers START:END of column seed c's: with
0:K the columns give the coarse styles (shape, pose), with K:L the fine ones (colour, texture).
`--sources` adds the sources as StyleGAN's figure does: a header row of the column seeds
and a first column of the row seeds. Example::

    latentserve mix --model stylish-shapes --rows 1,2,3 --cols 4,5 --layers 0:4 --out grid.png
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from latentserve.cli import client_commands as cc
from latentserve.client import Client, GenerateResult
from latentserve.client.transport import DEFAULT_ADDRESS

app = typer.Typer(help="Style mixing of a W+ generator.", add_completion=False)


@app.command("mix")
def mix(
    model: cc.Model = "",
    rows: Annotated[str, typer.Option("--rows", help="Row seeds, e.g. 1,2,3.")] = "1,2,3",
    cols: Annotated[str, typer.Option("--cols", help="Column seeds, e.g. 4,5.")] = "4,5",
    layers: Annotated[str, typer.Option(
        "--layers", help="Layers START:END taken from the column seed, e.g. 0:4.")] = "0:4",
    sources: Annotated[bool, typer.Option(
        "--sources", help="Add the sources: column seeds on top, row seeds on the left.")]
    = False,
    psi: cc.Psi = None,
    cutoff: cc.Cutoff = None,
    noise: cc.Noise = None,
    noise_seed: cc.NoiseSeed = None,
    labels: cc.Labels = None,
    out: cc.Out = Path("mix.png"),
    address: cc.Address = DEFAULT_ADDRESS,
    timeout_s: cc.Timeout = 30.0,
    as_json: cc.Json = False,
) -> None:
    """Mix styles: rows × columns, layers START:END from the column seed; writes a grid PNG."""
    span = cc.parse_layers(layers)
    assert span is not None
    row_seeds, col_seeds = cc._ints(rows, "--rows"), cc._ints(cols, "--cols")
    with cc._reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = cc._class_labels(client, model, labels)
        result = client.style_mix(
            model, row_seeds=row_seeds, col_seeds=col_seeds, layers=span, truncation_psi=psi,
            truncation_cutoff=cutoff, class_labels=class_labels, output="uint8", noise=noise,
            noise_seed=noise_seed, include_sources=sources)
        if sources:
            result = figure(result, len(row_seeds), len(col_seeds))
        cc._save(result, out, "images", as_json)


def figure(result: GenerateResult, rows: int, cols: int) -> GenerateResult:
    """StyleGAN's figure layout of a mix with sources: a blank corner, the column sources on
    top, then each row source followed by its mixes ((R + 1) × (C + 1) cells)."""
    assert result.images is not None
    order = [0, *range(rows, rows + cols)]  # index 0 stands in for the blank corner
    for r in range(rows):
        order += [r, *range(rows + cols + r * cols, rows + cols + (r + 1) * cols)]
    images = result.images[order]
    if images.dtype == np.uint8:
        images[0] = 255
    else:
        images[0] = result.output_range[1] if result.output_range else 1.0
    latents = result.latents[order]
    latents[0] = 0.0
    return replace(result, images=images, latents=latents, columns=cols + 1)
