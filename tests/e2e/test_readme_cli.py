"""The README's CLI block, run as written in a fresh bash shell against a server of the shipped
generators registered the way `make run` registers them (`latentserve registry init` into a
state folder): only the address (LATENTSERVE_ADDRESS, a free port) and the venv's absolute path
differ."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARK = "<!-- cli:runnable -->"
pytestmark = pytest.mark.timeout(600)


def runnable_block() -> str:
    after = README.read_text().split(MARK, 1)[1]
    return after.split("```bash\n", 1)[1].split("```", 1)[0]


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    return {**env, "LATENTSERVE_STATE_DIR": str(state), "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run`'s registry (registry init of the zoo) served on a free port."""
    state = tmp_path_factory.mktemp("state")
    done = subprocess.run([str(REPO / ".venv" / "bin" / "latentserve"), "registry", "init"],
                          env=_env(state), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    uri = f"sqlite:///{state / 'registry' / 'mlflow.db'}"
    settings = service_settings(uri, state / "cache", default_model="sprites-vae")
    with BackgroundServer(settings) as bg:
        yield bg.address


def test_the_readme_cli_block_runs_verbatim(address: str, tmp_path: Path) -> None:
    block = runnable_block()
    assert block.startswith("source .venv/bin/activate\n")
    script = block.replace("source .venv/bin/activate",
                           f"source {REPO / '.venv' / 'bin' / 'activate'}", 1)
    env = {**_env(tmp_path / "unused-state"), "LATENTSERVE_ADDRESS": address}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=500, stdin=subprocess.DEVNULL,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("digits.png", "strip.png", "walk.gif", "sweep.png", "a.png", "b.png", "z.npy",
                 "decoded.png"):
        assert (tmp_path / name).is_file(), name
    with Image.open(tmp_path / "a.png") as one:
        assert one.size == (64, 64)  # one picture per file: encode takes it as it is
