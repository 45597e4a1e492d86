"""`latentserve registry` commands through typer's CliRunner, on real sqlite registries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latentserve.registry.bundle.files import Bundle, bundles_in, load_bundle
from latentserve.registry.cli import registry as cli
from latentserve.registry.settings import ZooSettings
from latentserve.registry.store.mlflow_store import ModelRecord, RegistryClient
from tests.fixtures.tiny import build_tiny_bundle

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture
def bundles_dir(tmp_path: Path) -> Path:
    root = tmp_path / "zoo"
    build_tiny_bundle(root / "tiny")
    build_tiny_bundle(root / "tiny-cond", name="tiny-cond", num_classes=3)
    return root


def test_init_twice_changes_nothing_the_second_time(empty_registry_uri: str,
                                                     bundles_dir: Path) -> None:
    code, out = _run("init", "--registry-uri", empty_registry_uri, "--bundles-dir",
                     str(bundles_dir))
    assert code == 0, out
    assert "tiny-cond" in out and "registered, production set" in out
    assert "registry updated" in out
    expected = [ModelRecord("tiny", [1], {"production": 1}),
                ModelRecord("tiny-cond", [1], {"production": 1})]
    assert RegistryClient(empty_registry_uri).list_models() == expected

    code, out = _run("init", "--registry-uri", empty_registry_uri, "--bundles-dir",
                     str(bundles_dir))
    assert code == 0, out
    assert "nothing changed" in out and "already registered" in out
    assert RegistryClient(empty_registry_uri).list_models() == expected


def test_init_never_moves_an_existing_production_alias(empty_registry_uri: str,
                                                       bundles_dir: Path, tmp_path: Path) -> None:
    newer = build_tiny_bundle(tmp_path / "newer", seed=5)
    _run("register", str(newer.root), "--alias", "production", "--force", "--registry-uri",
         empty_registry_uri)
    code, out = _run("init", "--registry-uri", empty_registry_uri, "--bundles-dir",
                     str(bundles_dir))
    assert code == 0, out
    client = RegistryClient(empty_registry_uri)
    assert client.resolve("tiny", "production") == 1
    assert client.list_models()[0] == ModelRecord("tiny", [1, 2], {"production": 1})


def test_init_registers_the_zoo_from_the_setting_or_the_option(
        empty_registry_uri: str, monkeypatch: pytest.MonkeyPatch, bundles_dir: Path,
        tmp_path: Path) -> None:
    only_tiny = tmp_path / "only-tiny"
    only_tiny.mkdir()
    shutil.copytree(bundles_dir / "tiny", only_tiny / "tiny")
    monkeypatch.setenv("LATENTSERVE_ZOO_DIR", str(only_tiny))
    code, out = _run("init", "--registry-uri", empty_registry_uri)
    assert code == 0, out
    assert RegistryClient(empty_registry_uri).list_models() == [
        ModelRecord("tiny", [1], {"production": 1})]

    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _run("init", "--registry-uri", empty_registry_uri, "--zoo", str(empty))
    assert code == 0 and "nothing to register" in out

    monkeypatch.setenv("LATENTSERVE_ZOO_DIR", str(tmp_path / "absent"))
    code, out = _run("init", "--registry-uri", empty_registry_uri)
    assert code == 2 and "--zoo" in out and "LATENTSERVE_ZOO_DIR" in out


def test_default_zoo_is_the_checkouts_whatever_the_current_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LATENTSERVE_ZOO_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    zoo = ZooSettings().zoo_dir
    assert zoo == Path(__file__).resolve().parents[2] / "generators" / "zoo"
    assert [d.name for d in bundles_in(zoo)] == ["digits-cvae", "shapes3d", "sprites-vae",
                                             "stylish-shapes"]


def test_default_registry_uri_comes_from_settings(
    empty_registry_uri: str, monkeypatch: pytest.MonkeyPatch, tiny_bundle: Bundle
) -> None:
    monkeypatch.setenv("LATENTSERVE_REGISTRY_URI", empty_registry_uri)
    code, out = _run("register", str(tiny_bundle.root), "--alias", "production", "--force")
    assert code == 0 and "tiny: registered version 1 (production → v1)" in out
    code, out = _run("list")
    assert code == 0 and "tiny" in out and "production → v1" in out


def test_register_list_download(empty_registry_uri: str, tiny_bundle: Bundle,
                                tmp_path: Path) -> None:
    uri = ["--registry-uri", empty_registry_uri]
    code, out = _run("list", *uri)
    assert code == 0 and "no latentserve models" in out

    code, out = _run("register", str(tiny_bundle.root), "--name", "mine", "--alias", "staging",
                     *uri)
    assert code == 0 and "mine: registered version 1 (staging → v1)" in out
    code, out = _run("register", str(tiny_bundle.root), "--name", "mine", *uri)
    assert code == 0 and "mine: already registered as version 1" in out
    code, out = _run("register", str(tiny_bundle.root), "--name", "mine", "--force", *uri)
    assert code == 0 and "mine: registered version 2" in out

    code, out = _run("list", *uri)
    assert code == 0 and "mine" in out and "1, 2" in out and "staging → v1" in out

    code, out = _run("download", "mine", "--alias", "staging", "--out", str(tmp_path / "dl"),
                     *uri)
    assert code == 0, out
    path = Path(out.strip())
    assert path == tmp_path / "dl" / "mine" / "1"
    assert load_bundle(path).content_hash == tiny_bundle.content_hash
    code, out = _run("download", "mine", "--version", "2", "--out", str(tmp_path / "dl"), *uri)
    assert code == 0 and Path(out.strip()) == tmp_path / "dl" / "mine" / "2"


def test_errors_are_one_line_and_non_zero(registry_uri: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    cases = [
        (["register", str(broken), "--registry-uri", registry_uri], "spec file is missing"),
        (["download", "nope", "--alias", "production", "--out", str(tmp_path),
          "--registry-uri", registry_uri], "unknown model 'nope'"),
        (["download", "tiny", "--version", "5", "--out", str(tmp_path),
          "--registry-uri", registry_uri], "model 'tiny' has no version 5"),
        (["list", "--registry-uri", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"],
         "does not exist"),
    ]
    for args, message in cases:
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        text = " ".join(result.output.split())
        assert text.startswith("error:") and message in text, result.output
        assert "Traceback" not in result.output

    result = runner.invoke(cli.app, ["download", "tiny", "--out", str(tmp_path),
                                     "--registry-uri", registry_uri])
    assert result.exit_code == 2 and "exactly one of --version and --alias" in result.output
