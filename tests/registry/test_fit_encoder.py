"""fit-encoder on an ONNX-only bundle of the PyTorch DCGAN tutorial generator (random weights,
ngf 8): the encoder is exported with parity, its reconstruction is recorded, and the served
bundle encodes, decodes and projects from that encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from latentserve.client import Client
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.registry.training.encoder_fit import FitOptions, fit_encoder
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures import foreign_generators as fg
from tests.fixtures.cli import run_cli
from tests.fixtures.registry import _sqlite_uri
from tests.fixtures.service import service_settings

SHORT = FitOptions(steps=60, batch=32, width=8, eval_samples=64)


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    root = tmp_path_factory.mktemp("dcgan")
    onnx_path = fg.export_dcgan(root / "dcgan.onnx", ngf=8)
    bundle = build_bundle(root / "bundle", BundleOptions("dcgan", (-1.0, 1.0)),
                          {"decoder": onnx_path})
    assert bundle.spec.encoder is None
    return bundle


@pytest.fixture(scope="module")
def fitted(dcgan: Bundle) -> Bundle:
    return fit_encoder(dcgan.root, SHORT).bundle


def test_fit_encoder_exports_with_parity_and_records_reconstruction(fitted: Bundle) -> None:
    spec = fitted.spec
    assert spec.encoder is not None and spec.encoder.condition_input is None
    assert fitted.encoder_path is not None and fitted.encoder_path.is_file()
    assert spec.metrics["encoder_onnx_parity_max_abs_diff"] <= 1e-3
    assert np.isfinite(spec.metrics["encoder_fit_psnr_db"])
    assert spec.metrics["encoder_fit_steps"] == SHORT.steps
    assert "held-out generated images" in spec.metric_notes["encoder_fit_psnr_db"]
    assert load_bundle(fitted.root).spec == spec


def test_the_fitted_bundle_encodes_and_projects_through_the_service(
        fitted: Bundle, tmp_path: Path, registry_template: Path) -> None:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(registry_template, db)
    uri = _sqlite_uri(db)
    register_bundle(uri, fitted.root, "dcgan", alias="production")
    settings = service_settings(uri, tmp_path / "cache", default_model="dcgan")
    with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=120) as client:
        target = client.sample("dcgan", n=2, seed=3).images
        z = client.encode("dcgan", target).latents
        assert z.shape == (2, 100)
        assert client.decode("dcgan", z).images is not None
        result = client.project("dcgan", target, steps=3, init="encoder")
        assert result.done and result.latents.shape == (2, 100)
        assert (result.loss <= result.initial_loss).all()


def test_cli_fit_encoder(dcgan: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dcgan.root, copy)
    code, out = run_cli("bundle", "fit-encoder", str(copy), "--steps", "5", "--batch", "8",
                        "--width", "8", "--eval-samples", "16")
    assert code == 0, out
    assert "encoder.onnx" in out and "PSNR" in out
    assert load_bundle(copy).spec.encoder is not None
