"""The `stylish-shapes` networks: a StyleGAN2-like mapping network z → w and a synthesis network
that draws a 64×64 RGB image from W+ (one w per style layer) and per-layer noise images.
Example::

    mapping, synthesis = Mapping(), Synthesis()
    w = mapping(z)                                        # [B, 64]
    ws = w[:, None].expand(-1, synthesis.num_ws, -1)      # [B, 10, 64]
    x = synthesis(ws, *synthesis.noise_like(len(ws)))     # [B, 3, 64, 64] in [-1, 1]

The synthesis starts from a learned 4×4 constant and runs nine modulated 3×3 convolutions
(one at 4×4, two at each of 8, 16, 32, 64, upsampling bilinearly before the first of each
pair), then a modulated 1×1 ToRGB and tanh: `num_ws` = 10 styles. Modulation is StyleGAN2's in
its unfused form — scale the input channels by the style, convolve with the shared weight,
demodulate each output channel by rsqrt(Σ (w·s)²) — plain Mul/Conv/ReduceSum ops that export to
ONNX and batch like any convolution. The first conv at each resolution also reads two
coordinate channels, posed per image by an affine map the first style predicts (StyleGAN3's
input layer turns and shifts its Fourier features by w the same way; here the map is a full
2×3 affine): placing, turning and sizing an object is then a few multiplications rather than
something the convolutions must discover from a constant. Each conv adds its own noise input
[B, 1, H, W] times a learned per-layer strength, so the noise is an explicit graph input the
service can feed.
The mapping has no input normalisation: the data's factors are read from z's scale too.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

W_DIM = 64
Z_DIM = 64
MAPPING_LAYERS = 4
CHANNELS: dict[int, int] = {4: 128, 8: 128, 16: 64, 32: 32, 64: 16}
"""Feature channels per resolution."""
LAYER_RESOLUTIONS: tuple[int, ...] = (4, 8, 8, 16, 16, 32, 32, 64, 64)
"""Resolution of each modulated conv (style layer k = conv k; style 9 is ToRGB)."""
NUM_WS = len(LAYER_RESOLUTIONS) + 1


class Mapping(nn.Module):
    """z [B, Z_DIM] → w [B, W_DIM]: MAPPING_LAYERS linear layers, leaky ReLU between them."""

    def __init__(self, z_dim: int = Z_DIM, w_dim: int = W_DIM, layers: int = MAPPING_LAYERS):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, z: Tensor) -> Tensor:
        x = z
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, 0.2)
        return x


class ModulatedConv(nn.Module):
    """One style layer: (upsample) → modulated conv (demodulated) → + noise · strength → bias →
    leaky ReLU."""

    grid: Tensor

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, *, kernel: int = 3,
                 up: bool = False, demodulate: bool = True, activate: bool = True,
                 coords: int = 0):  # fmt: skip
        super().__init__()
        if coords:
            self.register_buffer("grid", coordinate_grid(coords), persistent=False)
            in_ch += 2
        self.coords = coords
        self.affine = nn.Linear(w_dim, in_ch)
        nn.init.zeros_(self.affine.bias)
        with torch.no_grad():
            self.affine.bias.add_(1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel)
                                   / math.sqrt(in_ch * kernel * kernel))  # fmt: skip
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.up, self.demodulate, self.activate = up, demodulate, activate
        self.padding = kernel // 2

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None,
                pose: Tensor | None = None) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.coords:
            x = torch.cat([x, posed_grid(self.grid, pose)], dim=1)
        style = self.affine(w)  # [B, in]
        x = F.conv2d(x * style[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            power = self.weight.pow(2).sum(dim=(2, 3))  # [out, in]
            x = x * torch.rsqrt(style.pow(2) @ power.t() + 1e-8)[:, :, None, None]
        if noise is not None:
            x = x + self.noise_strength * noise
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) if self.activate else x


def coordinate_grid(size: int) -> Tensor:
    """Pixel-centre coordinates [1, 2, size, size] (x, y) in (−1, 1)."""
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    return torch.stack([axis[None, :].expand(size, size), axis[:, None].expand(size, size)])[None]


def posed_grid(grid: Tensor, pose: Tensor | None) -> Tensor:
    """Coordinates [B, 2, H, W] after the per-image affine map `pose` [B, 6] (rows of a 2×3
    matrix): u = p0·x + p1·y + p2, v = p3·x + p4·y + p5; the plain grid when pose is None."""
    if pose is None:
        return grid
    x, y = grid[:, 0:1], grid[:, 1:2]
    p = pose[:, :, None, None]
    u = p[:, 0:1] * x + p[:, 1:2] * y + p[:, 2:3]
    v = p[:, 3:4] * x + p[:, 4:5] * y + p[:, 5:6]
    return torch.cat([u, v], dim=1)


class Synthesis(nn.Module):
    """ws [B, NUM_WS, W_DIM] + one noise image [B, 1, H, W] per conv → images [B, 3, 64, 64]
    in [-1, 1]."""

    def __init__(self, w_dim: int = W_DIM, channels: dict[int, int] | None = None):
        super().__init__()
        width = channels or CHANNELS
        self.const = nn.Parameter(torch.randn(1, width[4], 4, 4))
        convs = []
        prev = width[4]
        for i, res in enumerate(LAYER_RESOLUTIONS):
            up = i > 0 and res != LAYER_RESOLUTIONS[i - 1]
            first = i == 0 or up
            convs.append(ModulatedConv(prev, width[res], w_dim, up=up,
                                       coords=res if first else 0))
            prev = width[res]
        self.convs = nn.ModuleList(convs)
        self.to_rgb = ModulatedConv(prev, 3, w_dim, kernel=1, demodulate=False, activate=False)
        self.pose = nn.Linear(w_dim, 6)
        nn.init.zeros_(self.pose.weight)
        with torch.no_grad():
            self.pose.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
        self.num_ws = NUM_WS
        self.w_dim = w_dim

    @staticmethod
    def noise_shapes() -> list[tuple[int, int, int]]:
        """[C, H, W] of each noise input, in input order."""
        return [(1, r, r) for r in LAYER_RESOLUTIONS]

    def noise_like(self, batch: int, *, generator: torch.Generator | None = None,
                   zero: bool = False) -> list[Tensor]:  # fmt: skip
        """Noise inputs for a batch: standard normal (or zeros)."""
        shapes = [(batch, *s) for s in self.noise_shapes()]
        if zero:
            return [torch.zeros(s) for s in shapes]
        return [torch.randn(s, generator=generator) for s in shapes]

    def forward(self, ws: Tensor, *noise: Tensor) -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        pose = self.pose(ws[:, 0])
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], noise[i] if noise else None, pose)
        return torch.tanh(self.to_rgb(x, ws[:, len(self.convs)]))
