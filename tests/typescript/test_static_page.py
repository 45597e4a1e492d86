"""The static example page (clients/typescript/examples/sliders.html) in headless Chromium: it
loads the client's browser bundle from a static server of its own origin, calls the service's
HTTP port across origins (CORS), samples and edits as the sliders move, and shows exactly the
PNGs the Python SDK gets. The screenshot goes to .artefacts/typescript/ (or
$LATENTSERVE_ARTEFACTS)."""

from __future__ import annotations

import base64
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer
from tests.typescript.node import built_package

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("LATENTSERVE_ARTEFACTS", REPO / ".artefacts"))
CHROMIUM = Path(os.environ.get("LATENTSERVE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LATENTSERVE_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 120.0
pytestmark = pytest.mark.timeout(600)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """A static server of clients/typescript (built), on an origin other than the API's."""
    package = built_package()
    handler = functools.partial(_Quiet, directory=str(package))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"browser tests skipped: {CHROMIUM} / {CHROMEDRIVER} absent (`make browser` "
                    "installs Debian's chromium + chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,760", "--force-device-scale-factor=1", "--no-first-run",
                "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _state(driver: WebDriver) -> dict[str, Any]:
    return driver.execute_script("return window.latentserve || {}")  # type: ignore[no-any-return]


def _rendered(driver: WebDriver, **wanted: Any) -> dict[str, Any]:
    """Wait until the page has drawn a frame for the wanted slider values; return its state."""
    def done(d: WebDriver) -> Any:
        last = _state(d).get("last") or {}
        if all(last.get(k) == v for k, v in wanted.items()):
            return last
        error = d.execute_script("return document.getElementById('status').className")
        assert error != "error", d.find_element("id", "status").text
        return None

    return WebDriverWait(driver, WAIT_S).until(done, f"the page never drew {wanted}")


def _slide(driver: WebDriver, slider: str, value: float) -> None:
    driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = String(arguments[1]);"
        "s.dispatchEvent(new Event('input'));", slider, value)


def _png(driver: WebDriver, image: str) -> bytes:
    text = driver.execute_async_script(
        "const done = arguments[1];"
        "fetch(document.getElementById(arguments[0]).src).then(r => r.arrayBuffer())"
        ".then(b => done(btoa(String.fromCharCode(...new Uint8Array(b)))));", image)
    return base64.b64decode(text)


def test_sliders_sample_and_edit_in_chromium(browser: WebDriver, page_origin: str,
                                             http_url: str,
                                             http_server: BackgroundServer) -> None:
    browser.get(f"{page_origin}/examples/sliders.html?server={http_url}&model=tiny")
    first = _rendered(browser, seed=0)
    assert first["model"] == "tiny"
    _slide(browser, "seed", 5)
    last = _rendered(browser, seed=5)
    _slide(browser, "strength", 2)
    last = _rendered(browser, seed=5, strength=2)
    with Client(http_server.address) as sdk:
        sample = sdk.sample("tiny", n=1, seed=5, truncation_psi=1.0, output="png")
        edit = sdk.edit("tiny", seeds=[5], truncation_psi=1.0, direction=last["direction"],
                        strengths=[2.0], output="png")
    assert last["latents"] == [float(v) for v in sample.latents[0]]
    assert _png(browser, "sample") == sample.png[0]
    assert _png(browser, "edited") == edit.png[0]
    strip = browser.execute_script(
        "return [...document.querySelectorAll('#strip img')].map(i => i.naturalWidth)")
    assert len(strip) == 7 and all(strip)
    (ARTEFACTS / "typescript").mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "typescript" / "sliders.png"))


def test_docs_page_lists_every_operation_in_chromium(browser: WebDriver, http_url: str) -> None:
    browser.get(f"{http_url}/docs")
    count = WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.querySelectorAll('details.op').length"),
        "the docs page rendered no operation")
    assert count >= 12  # every GeneratorService RPC and the OIP routes
    browser.execute_script("document.querySelector('details.op').open = true")
    browser.find_element("css selector", "details.op button").click()
    WebDriverWait(browser, WAIT_S).until(
        lambda d: "HTTP 200" in d.find_element("css selector", "details.op .out").text,
        "the docs page's Send did not get an answer")
    (ARTEFACTS / "typescript").mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "typescript" / "docs.png"))
