"""The torch networks of `digits-cvae`: a conditional VAE for digits, plus the thin wrappers
exported to ONNX (decoder → image in [0, 1], encoder → μ, log σ²). Example::

    vae = DigitsCVAE(latent_dim=8)
    mu, logvar = vae.encode(torch.zeros(2, 1, 32, 32), torch.tensor([3, 7]))
    images = torch.sigmoid(vae.decode_logits(mu, torch.tensor([3, 7])))   # [2, 1, 32, 32]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _init_output_bias(body: nn.Sequential, logit: float | None) -> None:
    """Optionally start the output layer at the data's mean pixel (its logit) instead of 0.5
    (None keeps torch's default init)."""
    if logit is None:
        return
    last = body[-1]
    assert isinstance(last, nn.ConvTranspose2d) and last.bias is not None
    nn.init.constant_(last.bias, logit)


class DigitsCVAE(nn.Module):
    """Class-conditional VAE for 32×32 digits: q(z | x, y) and p(x | z, y).

    The decoder's first layer is `decoder_fc(z) + label_embedding(y)`: SeFa factorises the
    weight of `decoder_fc` (the part that sees z).
    """

    def __init__(
        self,
        latent_dim: int = 8,
        num_classes: int = 10,
        hidden: int = 256,
        output_bias: float = -1.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.encoder_conv = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1),
            nn.ReLU(),  # 16×16
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),  # 8×8
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.ReLU(),  # 4×4
            nn.Flatten(),
        )
        self.encoder_label = nn.Embedding(num_classes, 64 * 4 * 4)
        self.encoder_head = nn.Sequential(
            nn.Linear(64 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder_fc = nn.Linear(latent_dim, hidden)
        self.decoder_label = nn.Embedding(num_classes, hidden)
        self.decoder_body = nn.Sequential(
            nn.ReLU(),
            nn.Linear(hidden, 64 * 4 * 4),
            nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, 2, 1),
            nn.ReLU(),  # 8×8
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),  # 16×16
            nn.ConvTranspose2d(32, 1, 4, 2, 1),  # 32×32 logits
        )
        _init_output_bias(self.decoder_body, output_bias)

    def encode(self, x: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Images [B, 1, 32, 32] and int64 labels [B] → (μ, log σ²), each [B, N]."""
        h = self.encoder_conv(x) + self.encoder_label(label)
        mu, logvar = self.encoder_head(h).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: Tensor, label: Tensor) -> Tensor:
        """Latents [B, N] and int64 labels [B] → Bernoulli logits [B, 1, 32, 32]."""
        out: Tensor = self.decoder_body(self.decoder_fc(z) + self.decoder_label(label))
        return out

    def first_decoder_weight(self) -> Tensor:
        """The weight A [hidden, N] of the decoder's first linear layer on z (for SeFa)."""
        return self.decoder_fc.weight


class DigitsDecoder(nn.Module):
    """ONNX view of DigitsCVAE's decoder: (z [B, N], label int64 [B]) → x [B, 1, 32, 32]."""

    def __init__(self, vae: DigitsCVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        return torch.sigmoid(self.vae.decode_logits(z, label))


class DigitsEncoder(nn.Module):
    """ONNX view of DigitsCVAE's encoder: (x [B, 1, 32, 32], label [B]) → (mu, logvar)."""

    def __init__(self, vae: DigitsCVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        return self.vae.encode(x, label)
