"""The README's configuration table is the Settings class, rendered."""

from __future__ import annotations

import re
from pathlib import Path

from latentserve.service.settings import settings_markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def test_configuration_table_matches_settings() -> None:
    text = README.read_text()
    table = text[text.index(START) + len(START):text.index(END)].strip()
    assert table == settings_markdown_table(), (
        "README configuration table is stale: paste settings_markdown_table() output")


def test_readme_quick_start_has_exactly_two_commands() -> None:
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_latent_report_section_is_what_the_shipped_bundles_say() -> None:
    from latentserve.generators.latent_report import replace_section, report_markdown

    text = README.read_text()
    assert text == replace_section(text, report_markdown()), (
        "README 'Latent space, measured' is stale: run `latentserve train report`")


def test_every_picture_the_readme_shows_exists() -> None:
    text = README.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert pictures
    for rel in pictures:
        assert (README.parent / rel).is_file(), rel
