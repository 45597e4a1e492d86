"""The README pictures of `stylish-shapes`, decoded by onnxruntime from the exported networks:
StyleGAN's style-mixing figure and a layer-range edit strip. Example::

    draw_pictures(gen, directions, center, Path("generators/gallery"))
    # stylish-shapes-mixing.png, stylish-shapes-layer-edits.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentserve.core.arrays import F32
from latentserve.core.seeding import seed_latents
from latentserve.generators.stylish_data import LATENT_DIM
from latentserve.generators.stylish_eval import edit_ws, mix_ws
from latentserve.generators.stylish_onnx import WPlusOnnx
from latentserve.registry.bundle.preview import rgb_grid_png
from latentserve.registry.quality.direction_fits import Discovered

MIX_ROW_SEEDS = (11, 12, 13, 14)
MIX_COL_SEEDS = (21, 22, 23, 24, 25, 26)
EDIT_SEED = 3
EDIT_STRENGTHS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
EDIT_ROWS = (("scale", "default"), ("scale", "all"), ("orientation", "default"),
             ("orientation", "all"), ("object_hue", "default"), ("object_hue", "all"),
             ("background_hue", "default"), ("background_hue", "all"))  # fmt: skip
"""(direction, layers) per strip row: its default range, then every layer."""


def mixing_grid(gen: WPlusOnnx, rows: Sequence[int], cols: Sequence[int],
                layers: tuple[int, int]) -> F32:  # fmt: skip
    """StyleGAN's figure: a blank corner, the column sources along the top, each row's source
    on the left followed by its mixes (layers [start, end) from the column)."""
    row_ws = gen.broadcast(gen.map(seed_latents(rows, LATENT_DIM)))
    col_ws = gen.broadcast(gen.map(seed_latents(cols, LATENT_DIM)))
    top = np.concatenate([np.ones((1, 3, 64, 64), np.float32), gen.decode(col_ws)])
    mixed = gen.decode(mix_ws(row_ws, col_ws, layers)).reshape(len(rows), len(cols), 3, 64, 64)
    sources = gen.decode(row_ws)
    body = np.concatenate([sources[:, None], mixed], axis=1).reshape(-1, 3, 64, 64)
    return np.concatenate([top, body])


def edit_strip(gen: WPlusOnnx, found: Sequence[Discovered], seed: int) -> F32:
    """One base seed edited along each EDIT_ROWS direction, on its default layers and on all."""
    base = gen.broadcast(gen.map(seed_latents([seed], LATENT_DIM)))
    by_name = {d.name: d for d in found}
    rows = []
    for name, which in EDIT_ROWS:
        d = by_name[name]
        layers = d.layers if which == "default" and d.layers else (0, gen.num_ws)
        rows.append(gen.decode(edit_ws(base, d.vector, d.sigma, EDIT_STRENGTHS, layers)))
    return np.concatenate(rows)


def draw_pictures(gen: WPlusOnnx, found: Sequence[Discovered], center: F32,
                  gallery: Path) -> list[Path]:  # fmt: skip
    """Write the mixing figure (fine layers from the column), the coarse-mixing figure
    (coarse layers from the column) and the layer-range edit strip into `gallery`."""
    del center  # the pictures use ψ = 1
    gallery.mkdir(parents=True, exist_ok=True)
    fine = next(d.layers for d in found if d.name == "object_hue")
    coarse = next(d.layers for d in found if d.name == "scale")
    assert fine is not None and coarse is not None
    cols = len(MIX_COL_SEEDS) + 1
    files = {
        "stylish-shapes-mixing.png": rgb_grid_png(
            mixing_grid(gen, MIX_ROW_SEEDS, MIX_COL_SEEDS, fine), cols=cols),
        "stylish-shapes-mixing-coarse.png": rgb_grid_png(
            mixing_grid(gen, MIX_ROW_SEEDS, MIX_COL_SEEDS, coarse), cols=cols),
        "stylish-shapes-layer-edits.png": rgb_grid_png(
            edit_strip(gen, found, EDIT_SEED), cols=len(EDIT_STRENGTHS)),
    }
    out = []
    for name, png in files.items():
        (gallery / name).write_bytes(png)
        out.append(gallery / name)
    return out
