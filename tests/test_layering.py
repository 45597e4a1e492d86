"""The packages import one way: v1 → core → registry → service → promotion → cli.

The SDK (`latentserve.client`) sees only v1 and core, the explorer (`latentserve.explore`) only
the SDK, core and v1; the training code
(`latentserve.generators`) only core and registry. Every `import` statement in every source
file counts, including those inside functions and `if TYPE_CHECKING:` blocks.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MAY_IMPORT: dict[str, frozenset[str]] = {
    "v1": frozenset(),
    "inference": frozenset(),
    "core": frozenset({"v1"}),
    "registry": frozenset({"core", "v1"}),
    "service": frozenset({"registry", "core", "v1", "inference"}),
    "promotion": frozenset({"service", "registry", "core", "v1"}),
    "cli": frozenset({"promotion", "service", "registry", "core", "v1", "client", "explore",
                      "generators"}),
    "client": frozenset({"core", "v1"}),
    "explore": frozenset({"client", "core", "v1"}),
    "generators": frozenset({"core", "registry"}),
}
"""Which `latentserve.<package>` each top-level package may import (besides itself)."""


def _package_dirs() -> dict[str, Path]:
    """`latentserve.<package>` → its folder, from the setuptools package-dir of the root
    pyproject and of the generators' own distribution (generators/pyproject.toml)."""
    found = {}
    for project in (REPO / "pyproject.toml", REPO / "generators" / "pyproject.toml"):
        mapping = tomllib.loads(project.read_text())["tool"]["setuptools"]["package-dir"]
        found |= {name.split(".")[1]: project.parent / folder for name, folder in mapping.items()}
    return found


def imported_packages(source: str) -> set[tuple[int, str]]:
    """(line, package) for every `latentserve.<package>` an import statement in `source` names."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "latentserve":
                names = [f"latentserve.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "latentserve" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


def violations(package: str, folder: Path) -> list[str]:
    """`file:line imports latentserve.X` for each import `package` may not make."""
    allowed = MAY_IMPORT[package] | {package}
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for line, target in sorted(imported_packages(path.read_text(encoding="utf-8"))):
            if target not in allowed:
                bad.append(f"{path.relative_to(folder.parent)}:{line} imports latentserve.{target}")
    return bad


def test_every_package_has_a_rule() -> None:
    assert set(_package_dirs()) == set(MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_go_one_way(package: str) -> None:
    folder = _package_dirs()[package]
    assert not violations(package, folder), "\n".join(violations(package, folder))


def test_a_reverse_import_is_caught(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "bad.py").write_text(
        "def f():\n    from latentserve.service.settings import Settings\n    return Settings\n"
    )
    assert violations("registry", folder) == ["registry/bad.py:2 imports latentserve.service"]
