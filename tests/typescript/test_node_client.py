"""The TypeScript client's Node tests (`node --test`) against a real server, compared bit for
bit with what the Python SDK gets from the same server."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np

from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer
from tests.typescript.node import built_package, node_or_skip


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.float32).tobytes()).decode()


def expected_from_sdk(address: str) -> dict[str, object]:
    """What the Python SDK gets for the calls the Node tests make."""
    with Client(address) as sdk:
        info = sdk.get_model("tiny")
        direction = info.directions[0].name
        sample = sdk.sample("tiny", n=3, seed=7)
        edit = sdk.edit("tiny", seeds=[1, 2], direction=direction, strengths=[-1, 0, 1.5])
        path = sdk.interpolate("tiny", seeds=[1, 2, 3], steps=5, output="latents")
    assert sample.images is not None and edit.images is not None
    return {
        "latentDim": info.latent_dim, "direction": direction,
        "sample": {"latents": _b64(sample.latents), "images": _b64(sample.images),
                   "imageShape": list(sample.images.shape)},
        "edit": {"images": _b64(edit.images)},
        "interpolate": {"latents": _b64(path.latents)},
    }


def test_node_client_against_a_real_server(http_server: BackgroundServer, http_url: str,
                                           tmp_path: Path) -> None:
    node = node_or_skip()
    package = built_package()
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps(expected_from_sdk(http_server.address)))
    env = {**os.environ, "LATENTSERVE_HTTP_URL": http_url,
           "LATENTSERVE_EXPECTED": str(expected)}
    done = subprocess.run([node, "--test", "test/"], cwd=package, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"node --test failed:\n{done.stdout[-6000:]}\n{done.stderr}"
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 16 and "# fail 0" in done.stdout, done.stdout
