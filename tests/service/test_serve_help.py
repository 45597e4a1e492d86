"""`latentserve serve --help` on an 80-column terminal: every option name whole, no line wider."""

from __future__ import annotations

from typer.testing import CliRunner

from latentserve.cli import app
from latentserve.service.settings import Settings


def test_serve_help_fits_80_columns_with_every_option_whole() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    names = {word for line in lines for word in line.split() if word.startswith("--")}
    for field in Settings.model_fields:
        assert f"--{field.replace('_', '-')}" in names, field
