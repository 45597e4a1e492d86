"""The `shapes3d` decoder: class-conditional, drawing a scene by resize-convolutions (nearest
upsampling then a 3×3 convolution at each scale), which draw straight edges and flat faces
without the checkerboard of stride-2 transposed convolutions (Odena et al. 2016). Example::

    dec = ResizeConvDecoder(LAYOUT, num_classes=4)
    x = dec(torch.zeros(2, LAYOUT.dim), torch.tensor([0, 3]))     # [2, 3, 64, 64] in [0, 1]
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from latentserve.generators.factor_latent import FactorLatent

WIDTHS = (96, 64, 32, 24)
"""Channels at 4×4, 8×8, 16×16 and 32×32; a last resize-convolution draws the colours at
64×64. Wider than the earlier (64, 48, 24, 12), twice as wide at 32×32: Encode → Decode keeps
cubes 0.87 instead of 0.82, for 1.4× the time per training step."""


class ResizeConvDecoder(nn.Module):
    """(z [B, N], class label [B]) → x [B, C, 64, 64] in [0, 1]: factor features plus the class
    embedding, an MLP to a 4×4 map, then (upsample ×2, conv 3×3) to each wider map, ReLU
    between, the last one to the colour channels at 64×64."""

    def __init__(self, layout: FactorLatent, num_classes: int, channels_out: int = 3,
                 hidden: int = 256, widths: tuple[int, ...] = WIDTHS) -> None:  # fmt: skip
        super().__init__()
        self.layout = layout
        self.features_in = nn.Linear(layout.feature_dim, hidden)
        self.label = nn.Embedding(num_classes, hidden)
        layers: list[nn.Module] = [
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, widths[0] * 16),
            nn.ReLU(),
            nn.Unflatten(1, (widths[0], 4, 4)),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]  # fmt: skip
        layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                   nn.Conv2d(widths[-1], channels_out, 3, padding=1)]  # fmt: skip
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        h = self.features_in(self.layout.features(z)) + self.label(label)
        return torch.sigmoid(self.body(h))
