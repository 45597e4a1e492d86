"""`latentserve project` against a real server: progress, latents, reconstructions, JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.cli import run_cli
from tests.fixtures.service import service_settings


@pytest.fixture(scope="module")
def address(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg:
        yield bg.address


def _generated(address: str, model: str, path: Path, labels: list[int] | None = None) -> Path:
    with Client(address) as client:
        out = client.sample(model, n=1, seed=5, class_labels=labels, output="uint8")
    assert out.images is not None
    Image.fromarray(out.images[0, 0]).save(path)
    return path


def test_project_writes_latents_and_reconstructions(address: str, tmp_path: Path) -> None:
    picture = _generated(address, "tiny-noenc", tmp_path / "mine.png")
    code, text = run_cli("project", str(picture), "--model", "tiny-noenc", "--steps", "6",
                         "--out", str(tmp_path / "z.npy"), "--recon", str(tmp_path / "r.png"),
                         "--address", address)
    assert code == 0, text
    assert "wrote" in text and "PSNR" in text and "6 steps" in text
    assert np.load(tmp_path / "z.npy").shape == (1, 4)
    assert Image.open(tmp_path / "r.png").size == (10, 18)  # 1 column, target over recon


def test_project_json_names_the_picked_label(address: str, tmp_path: Path) -> None:
    picture = _generated(address, "tiny-cond", tmp_path / "c.png", labels=[2])
    code, text = run_cli("project", str(picture), "--model", "tiny-cond", "--steps", "3",
                         "--out", str(tmp_path / "z.npy"), "--json", "--address", address)
    assert code == 0, text
    doc = json.loads(text)
    assert doc["class_labels"] == [2] and doc["steps"] == 3 and doc["stop"] == "steps"
    assert len(doc["psnr"]) == 1 and doc["decodes"] > 3


def test_project_refuses_a_bad_budget_naming_it(address: str, tmp_path: Path) -> None:
    picture = _generated(address, "tiny", tmp_path / "t.png")
    code, text = run_cli("project", str(picture), "--model", "tiny", "--steps", "999999",
                         "--address", address)
    assert code == 1 and "steps" in text
