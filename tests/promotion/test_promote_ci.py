"""deploy/ci: the example workflow and script call commands that exist, and the script works."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from latentserve.cli import app as root_app
from latentserve.registry.store.mlflow_store import RegistryClient
from tests.fixtures.promote import GOOD_METRICS
from tests.fixtures.tiny import build_tiny_bundle

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "deploy" / "ci" / "promote.yml"
SCRIPT = REPO / "deploy" / "ci" / "promote.sh"
EXPECTED = [["train", "sprites-vae"], ["registry", "register"], ["registry", "promote"]]
_DEFAULT = re.compile(r"^(\w+)=\$\{\1:-([^}]*)\}$", re.MULTILINE)
_CALL = re.compile(r"""(?:^|[\s(;&|])(?:latentserve|"\$LATENTSERVE")\s+([^)|;&\n]*)""")


def _root_app() -> typer.Typer:
    """The `latentserve` command tree the CI files use (the console script's root)."""
    return root_app


def _calls(shell: str) -> list[list[str]]:
    """Every `latentserve …` call in a shell snippet, as argument lists.

    `$NAME` becomes the snippet's `NAME=${NAME:-default}` default, other variables "1".
    """
    defaults = dict(_DEFAULT.findall(shell))
    joined = shell.replace("\\\n", " ")
    calls = []
    for match in _CALL.finditer(joined):
        args = shlex.split(match.group(1), comments=True)
        calls.append([defaults.get(a[1:], "1") if a.startswith("$") else a for a in args])
    return calls


def _path(args: list[str]) -> list[str]:
    return args[:2]


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _workflow_steps() -> list[dict[str, Any]]:
    jobs = _workflow()["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def _workflow_calls() -> list[list[str]]:
    return [c for step in _workflow_steps() for c in _calls(step.get("run", ""))]


def test_workflow_calls_train_register_promote_in_order() -> None:
    assert [_path(c) for c in _workflow_calls()] == EXPECTED


def test_script_calls_the_same_commands_as_the_workflow() -> None:
    assert [_path(c) for c in _calls(SCRIPT.read_text())] == EXPECTED
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize("source", ["workflow", "script"])
def test_every_command_and_option_exists(source: str) -> None:
    calls = _workflow_calls() if source == "workflow" else _calls(SCRIPT.read_text())
    runner = CliRunner()
    app = _root_app()
    for args in calls:
        # --help is eager: the command path and every option must parse, then help is shown
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output


def test_workflow_promotes_to_production_and_uploads_the_report() -> None:
    promote = next(c for c in _workflow_calls() if _path(c) == ["registry", "promote"])
    assert promote[promote.index("--alias") + 1] == "production"
    report = promote[promote.index("--report") + 1]
    upload = next(s for s in _workflow_steps() if str(s.get("uses", "")).startswith(
        "actions/upload-artifact@"))
    assert upload["with"]["path"] == report and upload["if"] == "always()"


def test_script_registers_and_promotes_a_bundle(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "bundle", metrics=GOOD_METRICS)
    report = tmp_path / "promotion.md"
    env = dict(os.environ, MODEL="tiny", ALIAS="production", TRAIN="0",
               BUNDLE_DIR=str(bundle.root), REPORT=str(report),
               LATENTSERVE=str(Path(sys.executable).with_name("latentserve")),
               LATENTSERVE_REGISTRY_URI=empty_registry_uri)
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tiny: registered version 1" in done.stdout
    assert "promoted tiny v1 to production (was unset)" in done.stdout
    assert RegistryClient(empty_registry_uri).resolve("tiny", "production") == 1
    assert "**promoted** (exit code 0)" in report.read_text()
