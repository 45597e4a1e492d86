"""`sprites-vae`: the shape-conditional, factor-aligned sprites generator and its one-command
training run. Example::

    bundle = train_sprites_vae(Path("generators/zoo/sprites-vae"), seed=0)
    bundle.spec.directions[0].quality.spearman_within     # measured on decoded images

Design (why, in generators/README.md): shape is a class condition, the four continuous
factors are the latent axes (z = scale, orientation, pos_x, pos_y through a Gaussian copula,
so the prior N(0, I) is exactly the data's factor distribution). The data couples scale to
pos_y (ρ = 0.5, sprites lower in the frame are larger, as on a ground plane seen in
perspective), which makes the plain `scale` and `pos_y` edits entangled and their
conditional edits clean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentserve.core.arrays import F32, F64, I64
from latentserve.core.seeding import sample_latents
from latentserve.generators.factor_latent import FactorLatent
from latentserve.generators.factor_models import SpritesDecoder
from latentserve.generators.factor_pipeline import FactorConfig, FactorWorld, train_world
from latentserve.generators.sprite_measures import SPRITE_MEASURES
from latentserve.generators.sprites import (
    IMAGE_SIZE,
    SHAPES,
    SYMMETRY_ORDER,
    indices_to_values,
    render,
    render_indices,
    sample_factor_indices,
)
from latentserve.registry.bundle.files import Bundle

NAME = "sprites-vae"
EVAL_SEED = 7
"""Real renders for evaluation come from this seed, whatever the training seed."""
LAYOUT = FactorLatent(
    ("scale", "orientation", "pos_x", "pos_y"),
    circular=("orientation",),
    couplings={"scale": ("pos_y", 0.5)},
)
DATASET = (
    "dSprites-spec renders by latentserve.generators.sprites (64×64×1; shape 3 as the class, "
    "scale, orientation, pos_x, pos_y continuous); factors drawn from the prior (scale coupled "
    "to pos_y, ρ = 0.5) and, for a quarter of the pairs, uniformly"
)
_K = np.array([SYMMETRY_ORDER[s] for s in SHAPES], np.float64)


def render_latents(z: F64, labels: I64) -> F32:
    """Sprites of latents [n, 4] and shape labels [n]: quantiles u (see FactorLatent) →
    scale 0.5 + 0.5 u, orientation u · 2π/k (one symmetry period), pos_x, pos_y = u."""
    u = LAYOUT.quantiles(z)
    return render(shape=list(labels), scale=0.5 + 0.5 * u[:, 0],
                  orientation=u[:, 1] * 2.0 * np.pi / _K[labels], pos_x=u[:, 2],
                  pos_y=u[:, 3])  # fmt: skip


def grid_latents(values: F64) -> F64:
    """Exact latents of grid factor values [n, 5] (sprites.FACTOR_NAMES order)."""
    shapes = values[:, 0].astype(np.int64)
    period = 2.0 * np.pi / _K[shapes]
    u = np.stack([(values[:, 1] - 0.5) / 0.5, np.mod(values[:, 2], period) / period,
                  values[:, 3], values[:, 4]], axis=1)  # fmt: skip
    return LAYOUT.latents(u)


def real_renders(n: int, stream: int) -> tuple[F32, I64, F64]:
    """`n` grid renders (EVAL_SEED, `stream`): images, shape labels, exact latents."""
    idx = sample_factor_indices(n, EVAL_SEED, stream=10 + stream)
    return render_indices(idx), idx[:, 0], grid_latents(indices_to_values(idx))


def _preview(seed: int) -> tuple[F32, I64, int]:
    z = sample_latents(seed + 1, 8, LAYOUT.dim)
    return np.repeat(z, 3, axis=0), np.tile(np.arange(3, dtype=np.int64), 8), 6


WORLD = FactorWorld(
    name=NAME,
    dataset=DATASET,
    layout=LAYOUT,
    class_names=SHAPES,
    channels=1,
    image_size=IMAGE_SIZE,
    render_latents=render_latents,
    real_renders=real_renders,
    make_decoder=lambda: SpritesDecoder(LAYOUT),
    meaning={
        "scale": "larger sprite (and lower, as in the data)",
        "orientation": "turns counter-clockwise (a turn = one symmetry period)",
        "pos_x": "sprite moves right",
        "pos_y": "sprite moves down (and grows, as in the data)",
    },
    measures=SPRITE_MEASURES,
    preview=_preview,
    intro="Shape-conditional sprites (64×64, 1 channel; class = square, ellipse, "
    "heart): sample, interpolate, encode renders",
)


def train_sprites_vae(
    out_dir: Path,
    epochs: int | None = None,
    seed: int = 0,
    *,
    progress: bool = True,
    config: FactorConfig | None = None,
    checkpoint: Path | None = None,
) -> Bundle:
    """Render data, train, fit directions, export, measure, and write the bundle."""
    return train_world(WORLD, out_dir, epochs, seed, config=config or FactorConfig(),
                       progress=progress, checkpoint=checkpoint)
