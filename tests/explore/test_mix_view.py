"""The explorer's W+ controls against a served W+ generator (a lucidrains-style StyleGAN2 with
random weights): the edit layer range goes into the permalink and into every edit, and the
style-mixing view shows `Client.style_mix`'s grid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentserve.client import Client
from latentserve.explore import Explorer, View
from latentserve.explore.app import Page
from latentserve.explore.mix_view import on_layers, on_mix, tile, w_plus_updates
from latentserve.explore.render import to_hwc
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures import field_generators as fg
from tests.fixtures.service import service_settings

field_bundles = fg.field_bundles
field_registry = fg.field_registry


@pytest.fixture(scope="module")
def page(field_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    settings = service_settings(field_registry, tmp_path_factory.mktemp("cache"),
                                default_model=fg.STYLE)
    with BackgroundServer(settings) as bg, Client(bg.address) as client:
        yield Page(Explorer(client), tmp_path_factory.mktemp("files"), fg.STYLE)


def test_layer_range_round_trips_and_is_checked() -> None:
    view = View(model="m", layers="0:3")
    assert View.from_query(view.to_query()) == view and view.layer_range() == (0, 3)
    with pytest.raises(ValueError, match="START:END"):
        View.from_query("layers=3:1")


def test_edit_layers_reach_the_edit(page: Page) -> None:
    view = View(model=fg.STYLE, seed=4, strengths={"coarse0": 2.0})
    state, *_ = on_layers(page, view.to_query(), "http://x/", "3:6")
    assert "layers=3%3A6" in state
    client = page.explorer.client
    want = client.edit(fg.STYLE, seeds=[4], direction="coarse0", strengths=[2.0], layers=(3, 6),
                       output="uint8")
    assert want.images is not None
    scale = page.explorer.scale(fg.STYLE, page.explorer.view_px)
    np.testing.assert_array_equal(page.explorer.view_image(fg.STYLE, View.from_query(state)),
                                  to_hwc(want.images, scale)[0])
    info = client.get_model(fg.STYLE)
    shown, section = w_plus_updates(info, "3:6")
    assert shown["visible"] and shown["value"] == "3:6" and section["visible"]
    assert not w_plus_updates(client.get_model(fg.VAE), "")[1]["visible"]


def test_the_mix_view_is_the_style_mix_grid(page: Page, tmp_path: Path) -> None:
    state = View(model=fg.STYLE, psi=0.8).to_query()
    path, status = on_mix(page, state, "1,2", "7,8,9", "0:3")
    assert "2 × 3" in status
    result = page.explorer.client.style_mix(fg.STYLE, row_seeds=[1, 2], col_seeds=[7, 8, 9],
                                            layers=(0, 3), truncation_psi=0.8, output="uint8")
    assert result.images is not None
    cells = to_hwc(result.images, page.explorer.scale(fg.STYLE, page.explorer.thumb_px))
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(path)), tile(cells, 3))
    with pytest.raises(ValueError, match="row seeds"):
        on_mix(page, state, "a", "1", "0:3")
