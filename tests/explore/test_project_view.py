"""The explorer's Project action: live progress from an upload, then the projected base."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentserve.client import Client
from latentserve.explore import Explorer, View
from latentserve.explore.app import Page
from latentserve.explore.project_view import project_updates
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings


@pytest.fixture(scope="module")
def page(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=60) as client:
        yield Page(Explorer(client), tmp_path_factory.mktemp("files"))


def _upload(page: Page, model: str, path: Path) -> str:
    out = page.explorer.client.sample(model, n=1, seed=9, output="uint8")
    assert out.images is not None
    Image.fromarray(out.images[0, 0]).resize((32, 32)).save(path)  # any size is taken
    return str(path)


def test_project_streams_progress_then_sets_the_base(page: Page, tmp_path: Path) -> None:
    state = View(model="tiny-noenc:1").to_query()
    updates = list(project_updates(page, state, "http://x/", _upload(page, "tiny-noenc",
                                                                       tmp_path / "u.png")))
    progress, final = updates[:-1], updates[-1]
    assert progress and all("Projecting into tiny-noenc:1" in u[-1] for u in progress)
    assert all(Path(u[1]).is_file() for u in progress)
    view = View.from_query(final[0])
    assert view.base_latent() is not None and view.base_latent().shape == (1, 4)
    assert "Projected the upload" in final[-1] and "PSNR" in final[-1]


def test_project_without_an_upload_says_so(page: Page) -> None:
    (only,) = list(project_updates(page, View(model="tiny:1").to_query(), "", None))
    assert "upload an image first" in only[-1]
    assert np.asarray(only[:-1], dtype=object).shape == (5,)
