"""The base install (`pip install .`, no extras) in a fresh venv: the wheel is the SDK (no torch
code, no zoo: those are the `latentserve-generators` distribution), the SDK imports and talks to
a real service, the `latentserve` command runs the client commands and names the extra that the
other commands need instead of printing a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "deploy" / "constraints.txt"
MAX_WHEEL_BYTES = 2**20
"""The SDK wheel is code only (about 0.3 MB); the zoo alone is 11 MB."""
pytestmark = pytest.mark.timeout(600)


def _run(*cmd: str | Path, check: bool = True, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          env=env, cwd=REPO)
    if check:
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


def _sources(into: Path) -> Path:
    """A copy of what a build reads (pyproject, README, the package folders): building in the
    checkout itself would leave build/ and egg-info behind."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {f.split("/")[0] for f in config["tool"]["setuptools"]["package-dir"].values()}
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in sorted(folders):
        shutil.copytree(REPO / name, into / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, into / name)
    return into


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only `pip install <wheel of this repo>` (pinned, no extras)."""
    root = tmp_path_factory.mktemp("base-install")
    source = _sources(root / "src")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", root / "wheel", source)
    wheel = next((root / "wheel").glob("latentserve-*.whl"))
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", CONSTRAINTS, wheel)
    return root / "venv"


@pytest.fixture(scope="module")
def address(registry_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings) as bg:
        yield bg.address


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}


def test_the_wheel_is_the_sdk_without_torch_code_or_zoo(base_venv: Path) -> None:
    wheel = next((base_venv.parent / "wheel").glob("latentserve-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert not [n for n in names if n.endswith(".onnx")]
    assert not [n for n in names if n.startswith("latentserve/generators/")]
    assert "latentserve/client/__init__.py" in names
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, wheel.stat().st_size


def test_no_extra_is_installed(base_venv: Path) -> None:
    listed = _run(base_venv / "bin" / "python", "-m", "pip", "list", "--format=freeze").stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert names.isdisjoint({"onnxruntime", "mlflow", "torch", "pydantic-settings", "pillow"})


def test_sdk_imports_and_samples(base_venv: Path, address: str) -> None:
    code = ("from latentserve.client import Client\n"
            f"with Client({address!r}) as c:\n"
            "    out = c.sample('tiny', n=3, seed=1)\n"
            "    print(out.latents.shape, out.model.name)\n")
    done = _run(base_venv / "bin" / "python", "-c", code, env=_env())
    assert done.stdout.split() == ["(3,", "4)", "tiny"]


def test_command_runs_client_commands(base_venv: Path, address: str) -> None:
    cli = base_venv / "bin" / "latentserve"
    assert _run(cli, "--version", env=_env()).stdout.startswith("latentserve ")
    listed = _run(cli, "models", "--address", address, env=_env()).stdout
    assert "tiny" in listed
    assert "latent_dim" in _run(cli, "info", "tiny", "--address", address, env=_env()).stdout


@pytest.mark.parametrize(("args", "extra"), [
    (["serve"], "server"),
    (["serve", "--help"], "server"),
    (["registry", "list"], "server"),
    (["train", "sprites-vae"], "server,train"),
    (["explore"], "ui"),
])
def test_other_commands_name_their_extra(base_venv: Path, args: list[str], extra: str) -> None:
    done = _run(base_venv / "bin" / "latentserve", *args, check=False, env=_env())
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"pip install 'latentserve[{extra}]'" in done.stderr, done.stderr
    if args[0] == "train":  # the generators are a distribution of their own
        assert "latentserve-generators" in done.stderr and "./generators" in done.stderr


def test_png_output_without_pillow_is_one_line(base_venv: Path, address: str,
                                               tmp_path: Path) -> None:
    done = _run(base_venv / "bin" / "latentserve", "sample", "--model", "tiny", "--n", "2",
                "--out", tmp_path / "grid.png", "--address", address, check=False, env=_env())
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Pillow" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_image_helpers_name_the_images_extra(base_venv: Path, address: str) -> None:
    code = ("from latentserve.client import Client\n"
            f"with Client({address!r}) as c:\n"
            "    path = c.interpolate('tiny', seeds=[1, 2, 3], steps=8, output='uint8')\n"
            "    print(len(path))\n"
            "    try:\n"
            "        path.grid()\n"
            "    except ImportError as err:\n"
            "        print(err)\n")
    done = _run(base_venv / "bin" / "python", "-c", code, env=_env())
    count, message = done.stdout.strip().splitlines()
    assert count == "15" and "pip install 'latentserve[images]'" in message


README_TO_TINY = {
    '"127.0.0.1:50051"': "ADDRESS", '"sprites-vae"': '"tiny-cond"', '"shapes3d"': '"tiny-cond"',
    '"digits-cvae"': '"tiny-cond"', '"scale"': '"d0"', '"pos_y"': '"pc0"',
    "list(range(10))": "[0, 1, 2]", "n=10": "n=3",
}
"""The README's SDK example, pointed at the tiny test generators."""


def test_readme_sdk_example_runs_with_the_images_extra(
        base_venv: Path, address: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The install the README names for its SDK example (`.[images]`) runs that example."""
    root = tmp_path_factory.mktemp("images-install")
    wheel = next((base_venv.parent / "wheel").glob("latentserve-*.whl"))
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", CONSTRAINTS, f"{wheel}[images]")
    readme = (REPO / "README.md").read_text()
    assert 'pip install ".[images]"' in readme
    code = readme.split("## Python SDK", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for old, new in README_TO_TINY.items():
        assert old in code, old
        code = code.replace(old, new)
    work = root / "work"
    work.mkdir()
    done = subprocess.run([str(python), "-c", f"ADDRESS = {address!r}\n{code}"], cwd=work,
                          capture_output=True, text=True, timeout=300, env=_env(),
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in work.iterdir()} == {"sweep.png", "strip.png", "walk.gif"}


SETUPTOOLS_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "is absent from the")


@pytest.mark.parametrize("project", ["root", "generators"])
def test_building_the_wheels_prints_no_setuptools_warnings(project: str, tmp_path: Path) -> None:
    """An install log of warnings reads like errors: the licence and the zoo folders are declared
    the way setuptools asks."""
    if project == "root":
        source = _sources(tmp_path / "src")
    else:
        source = tmp_path / "generators"
        shutil.copytree(REPO / "generators", source,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    done = _run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                "-w", tmp_path / "wheel", source)
    log = done.stdout + done.stderr
    found = [line.strip() for line in log.splitlines()
             if any(w in line for w in SETUPTOOLS_WARNINGS)]
    assert not found, found
