"""Client commands against a real service: encode takes one picture per file of the model's size
(a grid is refused with the size expected, unless --resize); --labels takes class names; info
fits an 80-column terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentserve.cli.client_commands import app
from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def address(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg:
        yield bg.address


def _picture(path: Path, width: int, height: int, channels: int) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), np.uint8)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
    return path


def test_encode_takes_pictures_of_the_model_size_and_refuses_a_grid(
        address: str, tmp_path: Path) -> None:
    with Client(address) as client:
        channels, height, width = client.get_model("tiny").output_shape
    one = _picture(tmp_path / "a.png", width, height, channels)
    grid = _picture(tmp_path / "grid.png", 4 * width + 6, height, channels)
    args = ["encode", "--model", "tiny", "--address", address]

    ok = runner.invoke(app, [*args, str(one), "--out", str(tmp_path / "z.npy")])
    assert ok.exit_code == 0, ok.output
    assert np.load(tmp_path / "z.npy").shape[0] == 1

    refused = runner.invoke(app, [*args, str(one), str(grid)])
    assert refused.exit_code == 1
    line = " ".join(refused.stderr.split())
    assert f"{4 * width + 6}×{height}" in line and f"one {width}×{height} picture" in line
    assert "grid" in line and "--resize" in line

    resized = runner.invoke(app, [*args, str(grid), "--resize", "--out", str(tmp_path / "g.npy")])
    assert resized.exit_code == 0, resized.output


def test_labels_by_name_with_close_matches(address: str, tmp_path: Path) -> None:
    with Client(address) as client:
        names = client.get_model("tiny-cond").class_names
    args = ["sample", "--model", "tiny-cond", "--n", "2", "--address", address]
    ok = runner.invoke(app, [*args, "--labels", f"{names[1]},0", "--out", str(tmp_path / "g.png"),
                             "--json"])
    assert ok.exit_code == 0, ok.output
    wrong = runner.invoke(app, [*args, "--labels", f"{names[1]}x"])
    assert wrong.exit_code == 2
    assert f"did you mean '{names[1]}'" in " ".join(wrong.stderr.split())
    missing = runner.invoke(app, [*args])  # a conditional model without labels
    assert missing.exit_code == 1 and "--labels" in missing.stderr
    assert "class_labels" not in missing.stderr


def test_info_fits_80_columns(address: str) -> None:
    result = runner.invoke(app, ["info", "tiny", "--address", address], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
