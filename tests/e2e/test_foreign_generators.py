"""Generators from other codebases, end to end with only the commands of the README's "Bring a
model from another codebase": bundle create → directions discover sefa and pca → dedupe →
evaluate → register (a real MLflow sqlite registry) → promote with the packaged gates → serve
(a real gRPC server on a free port) → edit (the CLI, found through LATENTSERVE_PORT, and the
SDK). The models are public architectures with random weights, exported as their authors
export them: the DCGAN tutorial's generator (z [B, 100, 1, 1]), a diffusers-style VAE decoder
(SiLU, GroupNorm; a spatial latent), and a StyleGAN-like W+ synthesis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentserve.client import Client
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.bundle.spec import BundleSpec, MappingSpec
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures import foreign_generators as fg
from tests.fixtures.cli import run_cli
from tests.fixtures.service import service_settings

SHAPED_LATENTS = "latent_shape" in BundleSpec.model_fields
W_PLUS = "num_ws" in MappingSpec.model_fields


def cli(*args: str) -> str:
    code, out = run_cli(*args)
    assert code == 0, f"latentserve {' '.join(args)} → {code}\n{out}"
    return out


def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, create: list[str],
             *, sefa_refused: bool = False) -> tuple[Path, str]:
    """The README's commands on one model; returns the bundle folder and the promote output."""
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("LATENTSERVE_REGISTRY_URI", uri)
    bundle = tmp_path / name
    cli("bundle", "create", *create, "--out", str(bundle))
    code, out = run_cli("directions", "discover", str(bundle), "--method", "sefa", "--k", "4")
    if sefa_refused:
        assert code == 2 and "--method pca" in out and "supervised" in out, out
    else:
        assert code == 0, out
    cli("directions", "discover", str(bundle), "--method", "pca", "--k", "4")
    dedupe = cli("directions", "dedupe", str(bundle))
    assert "pc0" in dedupe.splitlines()[0]
    cli("bundle", "evaluate", str(bundle))
    cli("registry", "register", str(bundle))
    promoted = cli("registry", "promote", name, "--version", "1", "--alias", "production",
                   "--explain")
    assert f"promoted {name} v1 to production" in promoted
    return bundle, uri


def serve_and_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                   uri: str) -> None:
    """Serve the registry on a free port; edit along the first direction with the CLI (its
    address from LATENTSERVE_PORT, a grid enlarged by --scale) and the SDK."""
    bundle = load_bundle(tmp_path / name)
    direction = bundle.spec.directions[0].name
    settings = service_settings(uri, tmp_path / "cache", default_model=name)
    with BackgroundServer(settings) as server:
        monkeypatch.delenv("LATENTSERVE_ADDRESS", raising=False)
        monkeypatch.setenv("LATENTSERVE_PORT", server.address.rsplit(":", 1)[1])
        out = tmp_path / "sweep.png"
        cli("edit", "--model", name, "--seeds", "1,2", "--direction", direction,
            "--strengths=-2,0,2", "--scale", "2", "--out", str(out))
        _, height, width = bundle.spec.output.shape
        grid = Image.open(out)
        assert grid.width >= 2 * 3 * width and grid.height >= 2 * 2 * height
        with Client() as client:
            result = client.edit(name, seeds=[1, 2], direction=direction,
                                 strengths=[-2.0, 0.0, 2.0], output="float32")
    images = np.asarray(result.images)
    assert images.shape == (6, *bundle.spec.output.shape) and np.all(np.isfinite(images))
    assert not np.allclose(images[0], images[2])   # the edit moves the picture


def test_a_dcgan_as_its_authors_export_it(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_file = fg.export_dcgan(tmp_path / "dcgan.onnx", ngf=8)   # z [batch, 100, 1, 1]
    _, uri = pipeline(tmp_path, monkeypatch, "dcgan",
                      ["--decoder", str(onnx_file), "--output-range", "-1,1"])
    spec = load_bundle(tmp_path / "dcgan").spec
    assert spec.latent_dim == 100 and len(spec.directions) >= 4
    assert spec.output.shape == [3, 64, 64]
    serve_and_edit(tmp_path, monkeypatch, "dcgan", uri)


def test_a_vae_decoder_with_silu_and_a_spatial_latent(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_file = fg.export_vae_decoder(tmp_path / "vae.onnx", flat=not SHAPED_LATENTS)
    _, uri = pipeline(tmp_path, monkeypatch, "vae",
                      ["--decoder", str(onnx_file), "--output-range", "-1,1"],
                      sefa_refused=True)
    spec = load_bundle(tmp_path / "vae").spec
    assert spec.latent_dim == 256
    if SHAPED_LATENTS:
        assert list(spec.latent_shape or []) == [4, 8, 8]
    assert spec.output.shape == [3, 32, 32]
    serve_and_edit(tmp_path, monkeypatch, "vae", uri)


@pytest.mark.skipif(not W_PLUS, reason="W+ bundles (mapping.num_ws) are not in this checkout")
def test_a_w_plus_synthesis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mapping, synthesis = fg.export_style_gan(tmp_path, per_layer=True)   # ws [B, 7, 32]
    _, uri = pipeline(tmp_path, monkeypatch, "stylegan",
                      ["--mapping", str(mapping), "--decoder", str(synthesis),
                       "--output-range", "-1,1"])
    spec = load_bundle(tmp_path / "stylegan").spec
    assert spec.mapping is not None and getattr(spec.mapping, "num_ws", None) == 7
    assert "7 weights reading ws[:, 0:7]" in next(
        d.unit for d in spec.directions if d.method == "sefa")
    cli("directions", "discover", str(tmp_path / "stylegan"), "--method", "sefa", "--k", "2",
        "--layers", "0:3", "--names", "coarse0,coarse1")
    coarse = next(d for d in load_bundle(tmp_path / "stylegan").spec.directions
                  if d.name == "coarse0")
    assert tuple(getattr(coarse, "layers", None) or ()) == (0, 3)
    assert "3 weights reading ws[:, 0:3]" in coarse.unit
    assert spec.output.shape == [3, 16, 16]
    serve_and_edit(tmp_path, monkeypatch, "stylegan", uri)
