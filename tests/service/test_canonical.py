"""Encode and Project return canonical latents: circular factors nearest the prior's centre.

The shipped factor models draw the same image from latents a whole turn (2.0) apart along a
circular factor (sprites orientation, shapes3d hues); 1,000 encoded samples of each must all
be on the canonical turn, and decode to the images they came from.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentserve.client import Client
from latentserve.core.circular import turns_off
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.registry import _sqlite_uri
from tests.fixtures.service import service_settings

ZOO = Path(__file__).resolve().parents[2] / "generators" / "zoo"
MODELS = ("sprites-vae", "shapes3d")
SAMPLES = 1000


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, registry_template: Path) -> Iterator[Client]:
    db = tmp_path_factory.mktemp("canonical-registry") / "mlflow.db"
    shutil.copyfile(registry_template, db)
    uri = _sqlite_uri(db)
    for name in MODELS:
        register_bundle(uri, ZOO / name, name, alias="production")
    settings = service_settings(uri, tmp_path_factory.mktemp("canonical-cache"),
                                default_model="sprites-vae")
    with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=120.0) as client:
        yield client


@pytest.mark.parametrize("model", MODELS)
def test_encoded_samples_are_canonical(zoo: Client, model: str) -> None:
    spec = load_bundle(ZOO / model).spec
    turns = np.asarray([c.turn for c in spec.circular])
    info = zoo.get_model(model)
    labels = np.random.default_rng(0).integers(0, info.num_classes, SAMPLES)
    half = SAMPLES // 2
    parts = [zoo.sample(model, n=half, seed=seed, class_labels=labels[i * half:(i + 1) * half])
             for i, seed in enumerate((1, 2))]
    z = np.concatenate([p.latents for p in parts])
    images = np.concatenate([p.images for p in parts if p.images is not None])
    assert turns_off(z, turns, 0.0).any()  # prior samples do lie whole turns off
    encoded = np.concatenate([
        zoo.encode(model, images[i * half:(i + 1) * half],
                   class_labels=labels[i * half:(i + 1) * half]).latents for i in range(2)])
    assert not turns_off(encoded, turns, 0.0).any()  # 100 % canonical
    assert (np.abs(encoded @ turns.T / 4.0) <= 0.5 + 1e-5).all()


def test_projected_latents_are_canonical(zoo: Client) -> None:
    spec = load_bundle(ZOO / "sprites-vae").spec
    turns = np.asarray([c.turn for c in spec.circular])
    z = np.array([[0.2, 1.7, 0.1, -0.3], [0.0, -2.6, 0.5, 0.5]], np.float32)
    images = zoo.decode("sprites-vae", z, class_labels=[0, 2]).images
    assert images is not None
    result = zoo.project("sprites-vae", images, class_labels=[0, 2], steps=4)
    assert not turns_off(result.latents, turns, 0.0).any()
