"""Client CLI commands without a latentserve service: mounting, argument errors, and
service errors printed as one line with exit status 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from latentserve.cli import app as root_app
from latentserve.cli.client_commands import app
from tests.fixtures.service import closed_port

runner = CliRunner()


def test_root_mounts_the_client_commands_flat() -> None:
    result = runner.invoke(root_app, ["--help"])
    assert result.exit_code == 0
    for name in ("serve", "models", "info", "sample", "interpolate", "edit", "registry"):
        assert name in result.output
    help_text = runner.invoke(root_app, ["edit", "--help"]).output
    assert "--conditional-on" in help_text and "--strengths" in help_text


def test_sample_help_shows_the_seed_rule() -> None:
    help_text = runner.invoke(root_app, ["sample", "--help"], env={"COLUMNS": "200"}).output
    assert "SeedSequence((seed, i))" in help_text


def test_unreachable_service_prints_one_line_and_exits_1() -> None:
    address = closed_port()
    result = runner.invoke(
        app, ["models", "--timeout-s", "5"], env={"LATENTSERVE_ADDRESS": address}
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNAVAILABLE: ")
    assert address.split(":")[1] in lines[0]
    assert "latentserve serve" in lines[0]  # says how to start a server


@pytest.mark.parametrize(
    "args",
    [
        ["info", "sprites-vae"],
        ["sample", "--model", "m", "--n", "4", "--labels", "0,1"],
        ["interpolate", "--model", "m", "--seeds", "1,2,3", "--steps", "4"],
        [
            "edit",
            "--model",
            "m",
            "--seeds",
            "1,2",
            "--direction",
            "scale",
            "--strengths=-2,-1,0,1,2",
            "--conditional-on",
            "pos_x",
        ],
    ],
)
def test_service_errors_exit_1(bare_server: str, args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--address", bare_server])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("UNIMPLEMENTED: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["edit", "--seeds", "1"], "--direction is required"),
        (["edit", "--direction", "d", "--strengths", "x"], "--strengths must be"),
        (["sample", "--n", "0"], "--n"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--address", closed_port()])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_local_argument_errors_exit_1() -> None:
    result = runner.invoke(app, ["interpolate", "--method", "cubic", "--address", closed_port()])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: method must be one of")
