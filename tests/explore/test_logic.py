"""The explorer without a browser: permalinks, quality lines, and its pictures against the SDK
(a real server on tiny generators)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from latentserve.cli import app as root_app
from latentserve.client import Client, DirectionInfo, DirectionQuality
from latentserve.explore import Explorer, View, encode_latent, quality_text
from latentserve.explore.render import GRID_SIZE, slider_label
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings


@pytest.fixture(scope="module")
def explorer(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg, Client(bg.address) as client:
        yield Explorer(client)


def test_permalink_round_trip() -> None:
    view = View(model="sprites-vae:3", compare="sprites-vae:2", start=12, seed=17, psi=0.7,
                label=2, strengths={"scale": 1.25, "pos_x": 0.0, "orientation": -0.5},
                held=("pos_y",), keyframes=(1, 2, 3), steps=12, method="vp_lerp",
                latent=encode_latent(np.array([0.5, -1.0, 2.0], np.float32)))
    back = View.from_query(view.to_query())
    assert back == View(**{**view.__dict__, "strengths": {"scale": 1.25, "orientation": -0.5}})
    np.testing.assert_array_equal(back.base_latent(), [[0.5, -1.0, 2.0]])
    assert View.from_query("") == View()


@pytest.mark.parametrize("query, message", [
    ("psi=0", "ψ"), ("psi=abc", "psi='abc'"), ("method=cubic", "method"),
    ("keys=1,x", "keys"), ("steps=1", "steps"), ("s.scale=nan", "finite"),
])
def test_bad_permalinks_say_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        View.from_query(query)


def test_quality_line() -> None:
    plain = DirectionInfo("d0", "pca", "1 σ", "", 1.0)
    assert quality_text(plain) == "quality not measured · pca; 1 = 1 σ"
    long = DirectionInfo("t", "supervised", "1.0 = 1 σ of posterior samples; positive = more",
                         "", 1.0)
    assert quality_text(long).endswith("supervised; 1 = 1 σ")  # "1 =" once, the σ unit
    turn = DirectionInfo("orientation", "supervised",
                         "1.0 = a 12th of a turn (latent distance 0.1667); positive = ccw", "", 1.0)
    assert slider_label(turn) == "orientation (1 = a 12th of a turn)"  # not "σ units"
    q = DirectionQuality("ink", 0.98, 0.91, "centroid_x", 0.4, 0.05, True)
    text = quality_text(DirectionInfo("scale", "supervised", "1 σ", "scale", 1.0, q))
    assert "reliable: moves ink (Spearman ρ 0.98 within seeds, 0.91 pooled)" in text
    assert "leaks into centroid_x 0.40 (0.05 when held)" in text
    bad = DirectionQuality("ink", 0.2, 0.1, "", 0.0, 0.0, False)
    assert "UNRELIABLE" in quality_text(DirectionInfo("x", "pca", "", "", 1.0, bad))


def test_pictures_match_the_sdk(explorer: Explorer) -> None:
    client = explorer.client
    model = explorer.pin("tiny@production")
    assert model == "tiny:1"
    view = View(model=model, seed=3, psi=0.8, strengths={"d0": 1.5, "pc0": -1.0},
                held=("sefa0",))
    got = explorer.view_result(model, view)
    step = client.edit(model, seeds=[3], truncation_psi=0.8, direction="d0", strengths=[1.5],
                       conditional_on=["sefa0"], output="latents")
    want = client.edit(model, latents=step.latents, direction="pc0", strengths=[-1.0],
                       conditional_on=["sefa0"], output="uint8")
    np.testing.assert_array_equal(got.images, want.images)  # type: ignore[arg-type]
    assert explorer.view_result(model, view) is got  # repeated views come from the cache
    thumbs = explorer.seed_grid(model, view)
    assert [c for _, c in thumbs] == [f"seed {s}" for s in range(GRID_SIZE)]
    first = client.sample(model, n=1, seed=0, truncation_psi=0.8, output="uint8").images
    assert first is not None
    np.testing.assert_array_equal(thumbs[0][0][::12, ::12], first[0, 0])


def test_conditional_model_and_interpolation(explorer: Explorer) -> None:
    model = explorer.pin("tiny-cond@production")
    assert explorer.info(model).is_conditional
    view = View(model=model, label=2, keyframes=(0, 5), steps=4, method="lerp")
    seen: list[tuple[int, int]] = []
    path = explorer.interpolation(model, view, lambda done, total: seen.append((done, total)))
    want = explorer.client.interpolate(model, seeds=[0, 5], steps=4, method="lerp",
                                       class_labels=2, output="uint8")
    np.testing.assert_array_equal(path.images, want.images)  # type: ignore[arg-type]
    assert seen[-1] == (4, 4) and path.grid().size == (4 * 8, 8)
    with pytest.raises(ValueError, match="two keyframes"):
        explorer.interpolation(model, View(model=model, keyframes=(1,)))


def test_encode_needs_an_encoder(explorer: Explorer) -> None:
    model = explorer.pin("tiny-noenc")
    with pytest.raises(ValueError, match="no encoder"):
        explorer.encode(model, np.zeros((8, 8), np.uint8), 0)


def test_explore_is_mounted_with_its_extra() -> None:
    result = CliRunner().invoke(root_app, ["--help"])
    assert "explore" in result.output and "[needs ui]" in result.output
    help_text = CliRunner().invoke(root_app, ["explore", "--help"]).output
    assert "--address" in help_text and "--port" in help_text


def test_unreachable_service_is_one_readable_line() -> None:
    import grpc

    from latentserve.client import UnavailableError
    from latentserve.explore.app import _message, guarded

    def fails() -> list[object]:
        raise UnavailableError(grpc.StatusCode.UNAVAILABLE, "connection refused")

    out = guarded(3, fails, "127.0.0.1:1")()
    assert len(out) == 3
    assert out[-1].startswith("⚠️ The service is unreachable: UNAVAILABLE")
    assert "127.0.0.1:1" in out[-1]
    assert _message(ValueError("bad\n  seed")) == "⚠️ bad seed"
