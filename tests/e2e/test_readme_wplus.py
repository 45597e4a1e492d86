"""The README's "Generators with W+ and spatial latents" blocks, run as written: the bundle
commands on ONNX files exported like the section says (a lucidrains-style StyleGAN2 and a
diffusers-style VAE decoder, random weights), a real server on the registry they filled, then
the CLI block in bash and the SDK block in Python. Only the state folder and the address differ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.field_generators import export_style_gan, export_vae_decoder
from tests.fixtures.service import service_settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
pytestmark = pytest.mark.timeout(600)


def block(mark: str, language: str) -> str:
    after = README.read_text().split(f"<!-- wplus:{mark} -->", 1)[1]
    return after.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def _run(script: str, cwd: Path, env: dict[str, str]) -> str:
    venv = f"source {REPO / '.venv' / 'bin' / 'activate'}\n"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", venv + script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=500,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_w_plus_section_runs_verbatim(tmp_path: Path) -> None:
    paths = export_style_gan(tmp_path / "export")
    (tmp_path / "mapping.onnx").write_bytes(paths["mapping"].read_bytes())
    (tmp_path / "synthesis.onnx").write_bytes(paths["decoder"].read_bytes())
    export_vae_decoder(tmp_path / "vae_decoder.onnx")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    env |= {"LATENTSERVE_STATE_DIR": str(state), "MLFLOW_DISABLE_TELEMETRY": "true"}
    _run(block("build", "bash"), tmp_path, env)

    uri = f"sqlite:///{state / 'registry' / 'mlflow.db'}"
    settings = service_settings(uri, tmp_path / "cache", default_model="my-stylegan",
                                default_alias="staging")
    with BackgroundServer(settings) as bg:
        env["LATENTSERVE_ADDRESS"] = bg.address
        shown = _run(block("cli", "bash"), tmp_path, env)
        done = subprocess.run([sys.executable, "-c", block("sdk", "python")], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "W+ [6, 32]" in shown
    assert done.stdout.splitlines() == ["6 32 [(0, 3), (0, 3), (3, 6), (3, 6)]", "(4, 6, 32)",
                                        "(4, 16, 16) 5.49"], done.stdout + done.stderr
    assert Image.open(tmp_path / "mix.png").size == (3 * 16 + 2 * 2, 4 * 16 + 3 * 2)
    for name in ("fine.png", "cut.png", "mix-sdk.png"):
        assert (tmp_path / name).is_file(), name
