"""Bundles from torch modules: export with the project's settings, torch ↔ onnxruntime parity
recorded as the metric the promotion gate reads, a parity failure named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latentserve.core import seeding
from latentserve.generators.torch_bundle import PARITY_METRIC, build_bundle_from_torch
from latentserve.promotion.gates import load_gates, parity_gate, version_metrics
from latentserve.registry.bundle.builder import BundleOptions
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.quality.onnx_generator import OnnxGenerator


class Decoder(nn.Module):
    def __init__(self, dim: int = 6, classes: int = 0) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 3 * 8 * 8)
        self.emb = nn.Embedding(classes, 3 * 8 * 8) if classes else None

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z)
        if self.emb is not None and label is not None:
            h = h + self.emb(label)
        return torch.tanh(h).reshape(-1, 3, 8, 8)


class Encoder(nn.Module):
    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 2 * dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(x.flatten(1))
        return h[:, : self.dim], h[:, self.dim :]


class Noisy(Decoder):
    """Differs from its ONNX export: dropout left active in eval would; here a flag flips."""

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        out = super().forward(z)
        return out + 0.1 if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() else out


def test_torch_modules_become_a_bundle_with_recorded_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    decoder, encoder = Decoder(), Encoder()
    built = build_bundle_from_torch(
        tmp_path / "t", BundleOptions(name="torchy", output_range=(-1.0, 1.0)),
        {"decoder": decoder, "encoder": encoder}, example_latent=torch.zeros(6))
    spec = built.bundle.spec
    assert spec.latent_dim == 6 and spec.output.shape == [3, 8, 8]
    assert spec.encoder is not None and spec.encoder.output_logvar == "logvar"
    assert set(built.parity) == {"decoder", "encoder"}
    assert 0 <= spec.metrics[PARITY_METRIC] <= 1e-5
    gen = OnnxGenerator(built.bundle)
    z = gen.sample_latents(7, 4)
    with torch.no_grad():
        expected = decoder(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(gen.decode(z), expected, atol=1e-5)
    gate = parity_gate(version_metrics({}, built.bundle), load_gates().parity)
    assert gate.passed is True


def test_conditional_module(tmp_path: Path) -> None:
    built = build_bundle_from_torch(
        tmp_path / "c", BundleOptions(name="cond", output_range=(-1.0, 1.0),
                                      labels=["x", "y", "z"]),
        {"decoder": Decoder(classes=3)}, example_latent=torch.zeros(1, 6))
    assert built.bundle.spec.decoder.condition_input == "label"
    assert built.bundle.spec.num_classes == 3


def test_parity_over_tolerance_names_the_component(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"^decoder: max \|torch − onnxruntime\| is 0.1"):
        build_bundle_from_torch(tmp_path / "n", BundleOptions(name="n", output_range=(-2, 2)),
                                {"decoder": Noisy()}, example_latent=torch.zeros(6))
    assert not (tmp_path / "n").exists()


def test_latent_dim_must_match_the_example(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"^latent_dim: 5 was stated"):
        build_bundle_from_torch(
            tmp_path / "m", BundleOptions(name="m", output_range=(-1, 1), latent_dim=5),
            {"decoder": Decoder()}, example_latent=torch.zeros(6))


class Mapping(nn.Module):
    """z [B, 4] → w [B, 6] with a non-zero mean (so w̄ matters)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)) + 0.5


class NoisyMapping(Mapping):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = super().forward(z)
        return out + 0.1 if torch.onnx.is_in_onnx_export() else out


def test_two_stage_modules_export_mapping_and_synthesis(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mapping, synthesis, encoder = Mapping(), Decoder(dim=6), Encoder(dim=6)
    built = build_bundle_from_torch(
        tmp_path / "g", BundleOptions(name="gan", output_range=(-1.0, 1.0)),
        {"mapping": mapping, "decoder": synthesis, "encoder": encoder},
        example_latent=torch.zeros(4))
    spec = built.bundle.spec
    assert spec.mapping is not None and spec.editing_space == "w"
    assert (spec.latent_dim, spec.editing_dim, spec.decoder.input) == (4, 6, "w")
    assert set(built.parity) == {"mapping", "decoder", "mapping+decoder", "encoder"}
    assert 0 <= spec.metrics[PARITY_METRIC] <= 1e-5
    gen = OnnxGenerator(built.bundle)
    z = np.concatenate([seeding.sample_latents(s, 1, 4) for s in (1, 2, 3)])
    with torch.no_grad():
        w = mapping(torch.from_numpy(z))
        expected = synthesis(w).numpy()
        center = mapping(torch.from_numpy(seeding.sample_latents(9, 20_000, 4))).mean(0)
    np.testing.assert_allclose(gen.seed_latents([1, 2, 3]), w.numpy(), atol=1e-5)
    np.testing.assert_allclose(gen.decode(gen.seed_latents([1, 2, 3])), expected, atol=1e-5)
    np.testing.assert_allclose(built.bundle.truncation_center, center.numpy(), atol=0.02)
    assert gen.encode(expected).shape == (3, 6)


def test_mapping_parity_is_checked(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"^mapping: max \|torch − onnxruntime\| is 0.1"):
        build_bundle_from_torch(tmp_path / "n", BundleOptions(name="n", output_range=(-2, 2)),
                                {"mapping": NoisyMapping(), "decoder": Decoder()},
                                example_latent=torch.zeros(4))
