"""SDK and CLI against a real server on tiny generators: one grid layout rule, the frame-count
rule, animated exports (GIF/APNG/MP4), `--json`, and the encode/decode commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentserve.cli import app as root_app
from latentserve.client import Client
from latentserve.client.animation import animation_format, save_animation
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def address(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg:
        yield bg.address


@pytest.fixture(scope="module")
def client(address: str) -> Iterator[Client]:
    with Client(address) as c:
        yield c


def cli(address: str, *args: str) -> str:
    result = runner.invoke(root_app, [*args, "--address", address])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return result.stdout


def test_frame_count_rule_and_one_row_grid(client: Client) -> None:
    path = client.interpolate("tiny", seeds=[1, 2, 3], steps=8, output="uint8")
    assert len(path) == (3 - 1) * (8 - 1) + 1 == 15
    assert path.grid().size == (15 * 8, 8)  # one row, as the CLI's strip
    assert path.grid(5).size == (5 * 8, 3 * 8)  # ncols still overrides
    streamed = list(client.stream_interpolate("tiny", seeds=[1, 2, 3], steps=8,
                                              output="uint8"))
    assert sum(len(c) for c in streamed) == 15


def test_edit_grid_has_a_column_per_strength(client: Client) -> None:
    sweep = client.edit("tiny", seeds=[1, 2], direction="d0", strengths=[-1, 0, 1, 2],
                        output="uint8")
    assert sweep.grid().size == (4 * 8, 2 * 8)
    assert client.sample("tiny", n=9, seed=0, output="uint8").grid().size == (24, 24)


@pytest.mark.parametrize("suffix", [".gif", ".apng", ".mp4"])
def test_save_animation(client: Client, tmp_path: Path, suffix: str) -> None:
    path = client.interpolate("tiny", seeds=[1, 2], steps=6, output="uint8")
    out = path.save_animation(tmp_path / f"walk{suffix}", fps=10, scale=4)
    assert out.stat().st_size > 0
    if suffix == ".mp4":
        import av

        with av.open(str(out)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 6 and (frames[0].width, frames[0].height) == (32, 32)
        return
    with Image.open(out) as anim:
        assert anim.n_frames == 6 and anim.size == (32, 32)
        anim.seek(5)
        last = np.asarray(anim.convert("L"))
    expected = np.repeat(np.repeat(path.images[-1, 0], 4, axis=0), 4, axis=1)  # type: ignore[index]
    np.testing.assert_array_equal(last, expected)  # lossless: exact pixels


def test_animation_format_errors() -> None:
    assert animation_format("a.GIF") == "GIF" and animation_format("a.apng") == "PNG"
    with pytest.raises(ValueError, match=r"\.gif"):
        animation_format("a.webm")
    with pytest.raises(ValueError, match="at least one frame"):
        save_animation([], "a.gif")


def test_cli_interpolate_writes_a_gif_and_json(address: str, tmp_path: Path) -> None:
    out = tmp_path / "walk.gif"
    doc = json.loads(cli(address, "interpolate", "--model", "tiny", "--seeds", "1,2,3",
                         "--steps", "8", "--out", str(out), "--json"))
    assert doc["count"] == 15 and doc["out"] == str(out)
    assert doc["model"] == {"name": "tiny", "version": 1, "alias": "production"}
    assert np.asarray(doc["latents"]).shape == (15, 4)
    with Image.open(out) as anim:
        assert anim.n_frames == 15


def test_cli_strip_is_one_row(address: str, tmp_path: Path) -> None:
    out = tmp_path / "strip.png"
    cli(address, "interpolate", "--model", "tiny", "--seeds", "1,2,3", "--steps", "8",
        "--out", str(out))
    with Image.open(out) as strip:
        assert strip.size == (15 * 8 + 14 * 2, 8)


def test_cli_models_and_info_json(address: str) -> None:
    models = json.loads(cli(address, "models", "--json"))
    assert {m["name"] for m in models} == {"tiny", "tiny-cond", "tiny-noenc", "tiny-w"}
    info = json.loads(cli(address, "info", "tiny-cond", "--json"))
    assert info["num_classes"] == 3 and info["class_names"] == ["c0", "c1", "c2"]
    assert [d["name"] for d in info["directions"]] == ["d0", "pc0", "sefa0"]
    assert info["directions"][0]["quality"] is None
    assert info["encoder_conditional"] is True and info["editing_space"] == "z"
    two = json.loads(cli(address, "info", "tiny-w", "--json"))
    assert (two["editing_space"], two["has_mapping"], two["w_dim"]) == ("w", True, 6)


def test_cli_info_table_shows_spaces(address: str) -> None:
    table = cli(address, "info", "tiny-w")
    assert "W (6-d)" in table and "z (4) → w (6)" in table
    assert "yes, conditional" in cli(address, "info", "tiny-cond")


def test_cli_encode_then_decode(address: str, client: Client, tmp_path: Path) -> None:
    images = client.sample("tiny", n=2, seed=4, output="uint8").images
    assert images is not None
    files = []
    for i, item in enumerate(images):
        files.append(tmp_path / f"in{i}.png")
        Image.fromarray(item[0]).save(files[-1])
    latents = tmp_path / "z.npy"
    doc = json.loads(cli(address, "encode", "--model", "tiny", *map(str, files),
                         "--out", str(latents), "--json"))
    z = np.load(latents)
    np.testing.assert_array_equal(z, client.encode("tiny", images).latents)
    assert np.asarray(doc["latents"]).shape == (2, 4)
    out = tmp_path / "decoded.png"
    text = cli(address, "decode", str(latents), "--model", "tiny", "--out", str(out))
    assert "wrote" in text and "2 images" in text
    with Image.open(out) as grid:
        assert grid.size == (2 * 8 + 2, 8)


def test_cli_encode_without_encoder_is_one_line(address: str, tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    Image.new("L", (8, 8)).save(png)
    result = runner.invoke(root_app, ["encode", "--model", "tiny-noenc", str(png),
                                      "--address", address])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("FAILED_PRECONDITION")
