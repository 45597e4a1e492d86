"""The explorer in a real browser: headless Chromium (Debian's chromium + chromedriver, installed
by `make browser`) drives the page against a real latentserve server on tiny generators.

One page session walks through what a user does: pick a model, click a seed, drag a direction
slider, hold a direction, build an interpolation and download its GIF, upload a PNG and encode
it, open the permalink, compare two versions side by side, pick a class, meet an error.
Pixels shown by the page are compared with what the SDK returns for the same request.
Screenshots go to `.artefacts/explore/` (or $LATENTSERVE_ARTEFACTS). Every wait is on a page
condition (no sleeps, no timing assertions).
"""

from __future__ import annotations

import base64
import http.client
import io
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentserve.client import Client
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.devtools.processes import free_port
from tests.fixtures.service import service_settings
from tests.fixtures.tiny import build_tiny_bundle

webdriver = pytest.importorskip("selenium.webdriver")
gradio = pytest.importorskip("gradio")
from PIL import Image, UnidentifiedImageError  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from latentserve.explore import Explorer  # noqa: E402
from latentserve.explore.app import build_app, launch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("LATENTSERVE_ARTEFACTS", REPO / ".artefacts"))
"""Where screenshots go (gitignored; CI can keep the folder)."""
CHROMIUM = Path(os.environ.get("LATENTSERVE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LATENTSERVE_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 120.0
"""Upper bound of any one page condition (generous: the CI machine may be loaded)."""

FAILED_SHOT = ARTEFACTS / "explore-failed.png"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def artefacts() -> Path:
    root = ARTEFACTS / "explore"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def explore_registry(tmp_path_factory: pytest.TempPathFactory, registry_template: Path) -> str:
    """tiny v1 (production) and v2 (staging, other weights), tiny-cond v1 (production)."""
    root = tmp_path_factory.mktemp("explore-registry")
    shutil.copyfile(registry_template, root / "mlflow.db")
    uri = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    register_bundle(uri, build_tiny_bundle(root / "tiny1").root, "tiny", alias="production")
    register_bundle(uri, build_tiny_bundle(root / "tiny2", seed=1).root, "tiny", alias="staging")
    register_bundle(uri, build_tiny_bundle(root / "cond", name="tiny-cond", num_classes=3).root,
                    "tiny-cond", alias="production")
    return uri


@pytest.fixture(scope="module")
def service(explore_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(explore_registry, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg:
        yield bg.address


@pytest.fixture(scope="module")
def sdk(service: str) -> Iterator[Client]:
    with Client(service) as client:
        yield client


@pytest.fixture(scope="module")
def page_url(service: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The explorer, in this process, on a free port, over its own SDK client."""
    with Client(service) as client:
        demo = build_app(Explorer(client), files=tmp_path_factory.mktemp("explore-files"))
        launch(demo, port=free_port(), block=False)
        try:
            yield str(demo.local_url).rstrip("/") + "/"
        finally:
            demo.close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"browser tests skipped: {CHROMIUM} / {CHROMEDRIVER} absent (`make browser` "
                    "installs Debian's chromium + chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1900", "--force-device-scale-factor=1",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


# -- page helpers ----------------------------------------------------------------------------
def until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait for `condition` (a truthy value); on timeout fail with `what` and the status box."""
    def safe(d: WebDriver) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(safe)
    except Exception as err:
        driver.save_screenshot(str(FAILED_SHOT))
        raise AssertionError(f"page never showed {what}; status: {status(driver)!r}") from err


def css(driver: WebDriver, selector: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, selector)


def status(driver: WebDriver) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, "#status")
    return found[0].text if found else ""


def caption(driver: WebDriver) -> str:
    return str(css(driver, "#caption").text)


def image_src(driver: WebDriver, elem: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"#{elem} img")
    return str(found[0].get_attribute("src") or "") if found else ""


def fetch(url: str) -> bytes:
    if url.startswith("data:"):
        return base64.b64decode(url.split(",", 1)[1])
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def readable(src: str) -> tuple[np.ndarray] | None:
    """The picture at `src`, or None while it cannot be read whole: Gradio rewrites a cached
    file in place when the same picture is returned again, and a read during the rewrite
    comes back short."""
    try:
        return (pixels(fetch(src)),)
    except (http.client.HTTPException, OSError, UnidentifiedImageError):
        return None


def shown(driver: WebDriver, elem: str, other_than: str = "") -> tuple[str, np.ndarray]:
    """(src, grey pixels) of the image in #elem once it has a src different from `other_than`."""
    src = until(driver, lambda d: (s := image_src(d, elem)) and s != other_than and s,
                f"a new image in #{elem}")
    (found,) = until(driver, lambda d: readable(src), f"the image of #{elem} read whole")
    return src, found


def enlarged(images: np.ndarray | None, px: int = 256) -> np.ndarray:
    """What the page shows for uint8 [1, 1, H, W]: pixels repeated to about `px`."""
    assert images is not None
    item = images[0, 0]
    k = max(1, px // max(item.shape))
    return np.repeat(np.repeat(item, k, axis=0), k, axis=1)


def set_text(driver: WebDriver, selector: str, text: str) -> None:
    box = css(driver, selector)
    box.clear()
    box.send_keys(text)


def drag_slider(driver: WebDriver, elem: str, fraction: float) -> None:
    """Press on a range slider's middle and drag it by `fraction` of its width, then release
    (real pointer events: the page requests on release)."""
    rng = css(driver, f"#{elem} input[type=range]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", rng)
    width = rng.size["width"]
    ActionChains(driver).click_and_hold(rng).move_by_offset(int(width * fraction), 0) \
        .release().perform()


def shoot(driver: WebDriver, artefacts: Path, name: str) -> None:
    driver.save_screenshot(str(artefacts / f"{name}.png"))


# -- the walk-through -------------------------------------------------------------------------
def test_explorer_in_chromium(browser: WebDriver, page_url: str, sdk: Client, artefacts: Path,
                              downloads: Path, tmp_path: Path) -> None:
    d = browser
    d.get(page_url)
    until(d, lambda d: "tiny" in caption(d), "the first served model")

    # pick a model by name@alias: it is pinned to its version
    set_text(d, "#model input", "tiny@production")
    css(d, "#load").click()
    until(d, lambda d: "**tiny:1**" in caption(d) or "tiny:1 ·" in caption(d),
          "tiny pinned to version 1")
    src, _ = shown(d, "view")
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#seeds button img")) >= 12,
          "the seed browser")
    quality = css(d, "#dir-0").text
    assert "d0" in quality and "quality not measured" in quality, quality
    scrolling = d.execute_script(  # the direction column never needs a horizontal scrollbar
        "return Array.from(document.querySelectorAll('#directions, #directions *'))"
        ".filter(e => e.scrollWidth > e.clientWidth + 1"
        " && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).length")
    assert scrolling == 0

    # click a seed: it becomes the edited base
    d.find_elements(By.CSS_SELECTOR, "#seeds button img")[2].click()
    until(d, lambda d: "seed 2" in caption(d), "seed 2 selected")
    src, before = shown(d, "view", other_than=src)
    expected = sdk.sample("tiny:1", n=1, seed=2, output="uint8").images
    np.testing.assert_array_equal(before, enlarged(expected))
    shoot(d, artefacts, "01-seed")

    # drag the first direction: the view changes on release, to exactly the SDK's edit
    drag_slider(d, "dir-0", 0.3)
    until(d, lambda d: "d0 " in caption(d), "the d0 edit in the caption")
    src, after = shown(d, "view", other_than=src)
    strength = float(css(d, "#dir-0 input[type=number]").get_attribute("value") or "nan")
    assert strength > 0
    assert not np.array_equal(before, after), "the image did not change as the slider moved"
    sweep = sdk.edit("tiny:1", seeds=[2], direction="d0", strengths=[strength], output="uint8")
    np.testing.assert_array_equal(after, enlarged(sweep.images))
    shoot(d, artefacts, "02-slider")

    # hold the second direction fixed: the edit becomes conditional on it
    css(d, "#hold-1 input[type=checkbox]").click()
    until(d, lambda d: "holding pc0 fixed" in caption(d), "pc0 held")
    src, held = shown(d, "view", other_than=src)
    sweep = sdk.edit("tiny:1", seeds=[2], direction="d0", strengths=[strength],
                     conditional_on=["pc0"], output="uint8")
    np.testing.assert_array_equal(held, enlarged(sweep.images))
    link = until(d, lambda d: css(d, "#permalink textarea").get_attribute("value"),
                 "a permalink")
    assert "hold=pc0" in link and "s.d0=" in link, link
    shoot(d, artefacts, "03-held")

    # interpolate three keyframes and download the GIF
    set_text(d, "#keys textarea", "0,1,2")
    css(d, "#build").click()
    gif_link = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#gif a[href]"), "the GIF")
    until(d, lambda d: "15 frames" in status(d), "the frame count")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", gif_link[0])
    shoot(d, artefacts, "04-interpolation")
    gif_link[0].click()
    gif = until(d, lambda d: [p for p in downloads.glob("*.gif")
                              if not p.with_suffix(".gif.crdownload").exists()], "the download")
    with Image.open(gif[0]) as anim:
        assert anim.n_frames == 15
        anim.seek(0)
        first = np.asarray(anim.convert("L"))
    path = sdk.interpolate("tiny:1", seeds=[0, 1, 2], steps=8, method="slerp", output="uint8")
    np.testing.assert_array_equal(first, enlarged(path.images, 128))
    assert d.find_elements(By.CSS_SELECTOR, "#mp4 a[href]")

    # upload a PNG and encode it: the view becomes the decoded latent, edits still applied
    picture = sdk.sample("tiny:1", n=1, seed=5, output="uint8").images
    assert picture is not None
    png = tmp_path / "upload.png"
    Image.fromarray(picture[0, 0]).save(png)
    css(d, "#upload input[type=file]").send_keys(str(png))
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload img"), "the upload preview")
    css(d, "#encode").click()
    until(d, lambda d: "encoded image" in caption(d), "the encoded base")
    src, encoded = shown(d, "view", other_than=src)
    z = sdk.encode("tiny:1", picture).latents
    sweep = sdk.edit("tiny:1", latents=z, direction="d0", strengths=[strength],
                     conditional_on=["pc0"], output="uint8")
    np.testing.assert_array_equal(encoded, enlarged(sweep.images))
    shoot(d, artefacts, "05-encoded")

    # the permalink restores the exact view in a fresh page
    link = until(d, lambda d: (v := css(d, "#permalink textarea").get_attribute("value"))
                 and "z=" in v and v, "the permalink of the encoded view")
    d.get("about:blank")
    d.get(link)
    until(d, lambda d: "encoded image" in caption(d), "the restored view")
    _, restored = shown(d, "view")
    np.testing.assert_array_equal(restored, encoded)
    assert css(d, "#hold-1 input[type=checkbox]").is_selected()
    assert float(css(d, "#dir-0 input[type=number]").get_attribute("value") or 0) == strength
    shoot(d, artefacts, "06-permalink")

    # side by side: two versions of a model on the same seed
    d.get(page_url + "?model=tiny%3A1&compare=tiny%40staging&seed=4")
    until(d, lambda d: "seed 4" in caption(d), "the comparison view")
    _, left = shown(d, "view")
    _, right = shown(d, "view-b")
    np.testing.assert_array_equal(left, enlarged(sdk.sample("tiny:1", n=1, seed=4,
                                                            output="uint8").images))
    np.testing.assert_array_equal(right, enlarged(sdk.sample("tiny:2", n=1, seed=4,
                                                             output="uint8").images))
    assert not np.array_equal(left, right)
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#seeds-b button img")) >= 12,
          "the second seed browser")
    shoot(d, artefacts, "07-side-by-side")

    # a conditional model: the class picker conditions every picture
    d.get(page_url + "?model=tiny-cond%40production&seed=1&label=2")
    until(d, lambda d: "tiny-cond:1" in caption(d), "the conditional model")
    src, cond = shown(d, "view")
    assert css(d, "#label").is_displayed()
    np.testing.assert_array_equal(cond, enlarged(sdk.sample(
        "tiny-cond:1", n=1, seed=1, class_labels=2, output="uint8").images))
    css(d, "#label input").click()
    until(d, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]")
                        if o.text.strip() == "c0"], "the class list")[0].click()
    _, cond0 = shown(d, "view", other_than=src)
    np.testing.assert_array_equal(cond0, enlarged(sdk.sample(
        "tiny-cond:1", n=1, seed=1, class_labels=0, output="uint8").images))
    assert "label=0" in css(d, "#permalink textarea").get_attribute("value")
    shoot(d, artefacts, "08-class")

    # a service error is a readable line, not a traceback
    set_text(d, "#model input", "no-such-model@production")
    css(d, "#load").click()
    message = until(d, lambda d: "refused" in status(d) and status(d), "the error line")
    assert "no-such-model" in message and "Traceback" not in message
    shoot(d, artefacts, "09-error")
