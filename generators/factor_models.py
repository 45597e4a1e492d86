"""The torch networks of the factor-aligned generators (`sprites-vae`, `shapes3d`): a
class-conditional decoder from factor features to an image, and an amortised encoder whose
head is mapped back to the latent analytically (see `factor_latent`). Example::

    layout = SPRITES_LAYOUT
    dec = SpritesDecoder(layout)
    x = dec(torch.zeros(2, layout.dim), torch.tensor([0, 2]))     # [2, 1, 64, 64] in [0, 1]
    enc = FactorEncoder(layout, channels=1, num_classes=3)
    mu, logvar = enc(x, torch.tensor([0, 2]))                      # each [2, N]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentserve.generators.factor_latent import FactorLatent

_SPRITE_WINDOW = 32
"""Side of the window the sprite decoder draws a sprite in before placing it (pixels)."""
_SPRITE_SPAN = 32.0
"""Pixels between the centres of a sprite at pos 0 and pos 1 (the renderer's 64 − 2 · 16)."""


def _upsampler(hidden: int, widths: tuple[int, ...], out_channels: int) -> nn.Sequential:
    """hidden → [widths[0], 4, 4] → one stride-2 transposed conv per width (the last one to
    `out_channels`): output side 4 · 2^len(widths)."""
    layers: list[nn.Module] = [
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, widths[0] * 16),
        nn.ReLU(),
        nn.Unflatten(1, (widths[0], 4, 4)),
    ]
    outs = (*widths[1:], out_channels)
    for i, (c_in, c_out) in enumerate(zip(widths, outs, strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        if i < len(widths) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SpritesDecoder(nn.Module):
    """(z [B, N], shape label [B]) → x [B, 1, 64, 64] in [0, 1].

    An appearance network draws the sprite (shape, scale, orientation) centred in a 32×32
    window; a fixed translation by the position factors places the window in the frame
    (a spatial-transformer decoder: transposed convolutions are poor at placing things at
    coordinates, a translation is exact).
    """

    base_grid: Tensor

    def __init__(self, layout: FactorLatent, num_classes: int = 3, hidden: int = 256,
                 channels: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.layout = layout
        self._pos = [layout.factors.index("pos_x"), layout.factors.index("pos_y")]
        feature_cols = _feature_columns(layout)
        self._appearance_cols = [c for f, cols in feature_cols.items() if not f.startswith("pos")
                                 for c in cols]  # fmt: skip
        self._pos_cols = [feature_cols["pos_x"][0], feature_cols["pos_y"][0]]
        self.features_in = nn.Linear(len(self._appearance_cols), hidden)
        self.label = nn.Embedding(num_classes, hidden)
        self.body = _upsampler(hidden, (channels, channels, channels // 2), 1)
        size = 64
        lin = (torch.arange(size, dtype=torch.float32) + 0.5 - _SPRITE_WINDOW / 2) / (
            _SPRITE_WINDOW / 2
        )
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("base_grid", torch.stack([gx, gy], dim=-1)[None])

    def window(self, z: Tensor, label: Tensor) -> Tensor:
        """The sprite drawn in its 32×32 window (probabilities) [B, 1, 32, 32]."""
        f = self.layout.features(z)
        h = self.features_in(f[:, self._appearance_cols]) + self.label(label)
        return torch.sigmoid(self.body(h))

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        f = self.layout.features(z)
        pos = f[:, self._pos_cols] * (2.0 * _SPRITE_SPAN / _SPRITE_WINDOW)
        grid = self.base_grid - pos[:, None, None, :]
        return F.grid_sample(self.window(z, label), grid, mode="bilinear",
                             padding_mode="zeros", align_corners=False)  # fmt: skip


class SceneDecoder(nn.Module):
    """(z [B, N], class label [B]) → x [B, C, 64, 64] in [0, 1]: factor features plus the
    class embedding, an MLP, then four stride-2 transposed convolutions."""

    def __init__(self, layout: FactorLatent, num_classes: int, channels_out: int = 3,
                 hidden: int = 256, channels: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.layout = layout
        self.features_in = nn.Linear(layout.feature_dim, hidden)
        self.label = nn.Embedding(num_classes, hidden)
        self.body = _upsampler(hidden, (channels, channels * 3 // 4, channels // 2,
                                        channels // 4), channels_out)  # fmt: skip

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        h = self.features_in(self.layout.features(z)) + self.label(label)
        return torch.sigmoid(self.body(h))


class FactorEncoder(nn.Module):
    """(x [B, C, 64, 64], class label [B]) → (mu, logvar) [B, N].

    A conv net (with two coordinate channels) regresses `layout.head_targets`; the head maps
    to the latent analytically (`layout.head_to_latent`). logvar is a constant per axis: the
    log of the held-out squared error of each latent axis, set after training.
    """

    def __init__(self, layout: FactorLatent, channels: int, num_classes: int,
                 hidden: int = 256) -> None:  # fmt: skip
        super().__init__()
        self.layout = layout
        self.conv = nn.Sequential(
            nn.Conv2d(channels + 2, 32, 4, 2, 1),
            nn.ReLU(),  # 32×32
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),  # 16×16
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.ReLU(),  # 8×8
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.ReLU(),  # 4×4
            nn.Flatten(),
            nn.Linear(64 * 16, hidden),
        )
        self.label = nn.Embedding(num_classes, hidden)
        self.head_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                      nn.Linear(hidden, layout.feature_dim))  # fmt: skip
        lin = torch.linspace(-1.0, 1.0, 64)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("coords", torch.stack([gx, gy])[None])
        self.register_buffer("logvar", torch.zeros(layout.dim))

    def head(self, x: Tensor, label: Tensor) -> Tensor:
        """The regression head [B, feature_dim] (what training fits)."""
        coords = self.coords.expand(x.shape[0], -1, -1, -1)  # type: ignore[operator]
        h = self.conv(torch.cat([x, coords], dim=1)) + self.label(label)
        out: Tensor = self.head_out(h)
        return out

    def forward(self, x: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        mu = self.layout.head_to_latent(self.head(x, label))
        logvar = self.logvar.expand(x.shape[0], -1)  # type: ignore[operator]
        return mu, logvar


def _feature_columns(layout: FactorLatent) -> dict[str, list[int]]:
    """factor → its columns in `layout.features` (two for a circular factor)."""
    cols: dict[str, list[int]] = {}
    at = 0
    for name in layout.factors:
        width = 2 if name in layout.circular else 1
        cols[name] = list(range(at, at + width))
        at += width
    return cols
