"""The README's "Edit your own picture" block, run as written in a fresh bash shell against a
server of the shipped generators (`latentserve registry init`, as `make run` does)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e.test_readme_cli import README, REPO, _env, address  # noqa: F401

MARK = "<!-- project:runnable -->"
pytestmark = pytest.mark.timeout(600)


def test_the_project_block_runs_verbatim(address: str, tmp_path: Path) -> None:  # noqa: F811
    block = README.read_text().split(MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.startswith("source .venv/bin/activate\n")
    script = block.replace("source .venv/bin/activate",
                           f"source {REPO / '.venv' / 'bin' / 'activate'}", 1)
    env = {**_env(tmp_path / "unused-state"), "LATENTSERVE_ADDRESS": address}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=500, stdin=subprocess.DEVNULL,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert np.load(tmp_path / "heart.npy").shape == (1, 4)
    doc = json.loads((tmp_path / "heart.json").read_text())
    assert doc["class_names"] == ["heart"] and doc["psnr"][0] > 20
    with Image.open(tmp_path / "heart-recon.png") as recon:
        assert recon.size == (66, 130)
    assert (tmp_path / "heart-turned.png").is_file()
