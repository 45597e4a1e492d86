"""`latentserve registry promote` / `rollback` on real sqlite registries, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from latentserve.promotion import cli
from latentserve.promotion.gates import GatesConfig, load_gates
from latentserve.promotion.promote import EXIT_ERROR, EXIT_GATE_FAILED, EXIT_OK, promote
from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle
from latentserve.service.devtools.processes import free_port
from tests.fixtures.promote import (
    GOOD_METRICS,
    TOLERANT_LATENCY,
    corrupt_decoder_dir,
    register_unvalidated,
    tiny_with_decoder,
)
from tests.fixtures.tiny import build_tiny_bundle

runner = CliRunner()
PROD = "production"


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def gates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged gates with a latency slack that timing noise cannot exceed."""
    path = tmp_path_factory.mktemp("gates") / "gates.toml"
    path.write_text(TOLERANT_LATENCY)
    return path


@pytest.fixture(scope="module")
def gates(gates_file: Path) -> GatesConfig:
    return load_gates(gates_file)


def _promote(uri: str, version: int, *extra: str, name: str = "tiny",
             gates: Path | None = None) -> tuple[int, str]:
    more = ("--gates", str(gates)) if gates is not None else ()
    return _run("promote", name, "--version", str(version), "--alias", PROD,
                "--registry-uri", uri, *more, *extra)


def _register(uri: str, root: Path, *, alias: str | None = None) -> int:
    return register_bundle(uri, root, "tiny", alias=alias, force=True)


def _holder(uri: str, alias: str = PROD) -> int | None:
    return RegistryClient(uri).list_models()[0].aliases.get(alias)


def _gate_tags(uri: str, version: int) -> dict[str, str]:
    return {k: v for k, v in RegistryClient(uri).version_tags("tiny", version).items()
            if k.startswith(("gate", "latentserve.previous", "latentserve.history", "promoted"))}


@pytest.fixture
def holder_uri(empty_registry_uri: str, tmp_path: Path) -> str:
    """A registry where "tiny" v1 (good metrics) holds `production`."""
    _register(empty_registry_uri, build_tiny_bundle(tmp_path / "v1", metrics=GOOD_METRICS).root,
              alias=PROD)
    return empty_registry_uri


def test_good_version_promotes_records_tags_and_writes_report(
    holder_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    v2 = _register(holder_uri, build_tiny_bundle(tmp_path / "v2", seed=1,
                                                 metrics=GOOD_METRICS).root)
    report = tmp_path / "out" / "promotion.md"
    code, out = _promote(holder_uri, v2, "--report", str(report), gates=gates_file)
    assert code == EXIT_OK, out
    assert "promoted tiny v2 to production (was v1)" in out
    gate_lines = [line.split(":")[0].split() for line in out.splitlines() if ":" in line]
    gates_printed = [words[1] for words in gate_lines if len(words) == 2]
    assert "smoke" in gates_printed and len(gates_printed) == len(set(gates_printed)), out
    assert _holder(holder_uri) == v2
    tags = _gate_tags(holder_uri, v2)
    for gate in ("bundle", "onnx_parity", "quality.recon_mse", "quality.monotonicity_d0",
                 "smoke", "latency"):
        assert tags[f"gate.{gate}"] == "pass", (gate, tags)
    assert tags["gate.onnx_parity.value"] == "2e-06"
    assert tags["gate.latency.value"].endswith(" ms")
    assert not any(k.endswith(".detail") for k in tags)  # details only for failed gates
    assert tags["gates.result"] == "pass" and tags["gates.baseline"] == "production → v1"
    assert tags["latentserve.previous.production"] == "1"
    assert tags["latentserve.history.production"] == "[1]"
    assert "promoted.production.at" in tags
    text = report.read_text()
    assert text.startswith("# Promotion: tiny v2 → `production`")
    assert "**promoted** (exit code 0)" in text
    assert "| `quality.recon_mse` | ✅ pass | 0.01 |" in text


def test_metrics_worse_than_the_holder_block_promotion(
    holder_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    worse = dict(GOOD_METRICS, recon_mse=0.02)
    v2 = _register(holder_uri, build_tiny_bundle(tmp_path / "v2", seed=1, metrics=worse).root)
    report = tmp_path / "promotion.md"
    code, out = _promote(holder_uri, v2, "--report", str(report), gates=gates_file)
    assert code == EXIT_GATE_FAILED, out
    assert "not promoted" in out and "quality.recon_mse" in out
    assert "fail quality.recon_mse: 0.02 — " in out and "holder 0.01" in out  # why, once
    assert _holder(holder_uri) == 1
    tags = _gate_tags(holder_uri, v2)
    assert tags["gate.quality.recon_mse"] == "fail"
    assert tags["gate.quality.recon_mse.value"] == "0.02"
    assert "holder 0.01" in tags["gate.quality.recon_mse.detail"]
    assert tags["gate.smoke"] == "pass" and tags["gates.result"] == "fail"
    assert "latentserve.previous.production" not in tags
    assert "**rejected** (exit code 1)" in report.read_text()


def test_decoder_with_nan_output_fails_the_smoke_gate(
    holder_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    bad = tiny_with_decoder(tmp_path / "nan", "nan", GOOD_METRICS, seed=1)
    v2 = _register(holder_uri, bad.root)
    code, out = _promote(holder_uri, v2, gates=gates_file)
    assert code == EXIT_GATE_FAILED, out
    assert _holder(holder_uri) == 1
    tags = _gate_tags(holder_uri, v2)
    assert tags["gate.bundle"] == "pass"  # schema and IO agree: a later gate catches it
    assert tags["gate.smoke"] == "fail" and "NaN" in tags["gate.smoke.detail"]


def test_corrupt_onnx_fails_the_bundle_gate(
    holder_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    v2 = register_unvalidated(holder_uri, corrupt_decoder_dir(tmp_path / "bad", GOOD_METRICS),
                              "tiny")
    code, out = _promote(holder_uri, v2, gates=gates_file)
    assert code == EXIT_GATE_FAILED, out
    assert _holder(holder_uri) == 1
    tags = _gate_tags(holder_uri, v2)
    assert tags["gate.bundle"] == "fail" and "not a valid ONNX model" in tags["gate.bundle.detail"]
    assert tags["gate.smoke"] == "skip" and tags["gate.latency"] == "skip"
    assert tags["gate.onnx_parity"] == "pass"  # metrics still read from the version's tags


def test_no_holder_uses_absolute_thresholds(
    empty_registry_uri: str, tmp_path: Path, gates: GatesConfig
) -> None:
    poor = dict(GOOD_METRICS, recon_mse=0.2)
    v1 = _register(empty_registry_uri, build_tiny_bundle(tmp_path / "v1", metrics=poor).root)
    result = promote(empty_registry_uri, "tiny", v1, PROD, gates=gates)
    assert result.outcome == "rejected" and result.holder is None
    failed = {g.name: g for g in result.failed}
    assert set(failed) == {"quality.recon_mse"}
    assert "absolute threshold" in failed["quality.recon_mse"].detail
    assert _holder(empty_registry_uri) is None


def test_dry_run_moves_nothing_and_records_nothing(
    holder_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    v2 = _register(holder_uri, build_tiny_bundle(tmp_path / "v2", seed=1,
                                                 metrics=GOOD_METRICS).root)
    code, out = _promote(holder_uri, v2, "--dry-run", gates=gates_file)
    assert code == EXIT_OK, out
    assert "dry run" in out and "all gates pass" in out
    assert _holder(holder_uri) == 1 and _gate_tags(holder_uri, v2) == {}

    v3 = _register(holder_uri, build_tiny_bundle(
        tmp_path / "v3", seed=2, metrics=dict(GOOD_METRICS, monotonicity_d0=0.1)).root)
    code, out = _promote(holder_uri, v3, "--dry-run", gates=gates_file)
    assert code == EXIT_GATE_FAILED, out
    assert _holder(holder_uri) == 1 and _gate_tags(holder_uri, v3) == {}


def test_rollback_restores_previous_holders_in_turn(
    empty_registry_uri: str, tmp_path: Path, gates_file: Path
) -> None:
    uri = empty_registry_uri
    versions = [_register(uri, build_tiny_bundle(tmp_path / f"v{seed}", seed=seed,
                                                 metrics=GOOD_METRICS).root) for seed in range(3)]
    for version in versions:  # the first has no holder: absolute thresholds, and it passes
        code, out = _promote(uri, version, gates=gates_file)
        assert code == EXIT_OK, out
    assert "(was unset)" not in out and "promoted tiny v3 to production (was v2)" in out
    assert _gate_tags(uri, 1)["latentserve.previous.production"] == ""
    assert _gate_tags(uri, 3)["latentserve.history.production"] == "[1, 2]"

    code, out = _run("rollback", "tiny", "--alias", PROD, "--registry-uri", uri)
    assert code == EXIT_OK, out
    assert "production → v2 (was v3)" in out and _holder(uri) == 2
    assert "rolled_back.production.at" in RegistryClient(uri).version_tags("tiny", 3)

    code, out = _run("rollback", "tiny", "--alias", PROD, "--registry-uri", uri)
    assert code == EXIT_OK, out
    assert _holder(uri) == 1

    code, out = _run("rollback", "tiny", "--alias", PROD, "--registry-uri", uri)
    assert code == EXIT_ERROR and "nothing to roll back" in out
    assert _holder(uri) == 1


def test_already_holding_the_alias_is_a_no_op(holder_uri: str) -> None:
    code, out = _promote(holder_uri, 1)
    assert code == EXIT_OK and "already holds production" in out
    assert _gate_tags(holder_uri, 1) == {}


def test_baseline_alias_is_what_the_gates_compare_with(
    holder_uri: str, tmp_path: Path, gates: GatesConfig
) -> None:
    worse = dict(GOOD_METRICS, recon_mse=0.03)  # passes the absolute 0.05, not the holder's 0.01
    v2 = _register(holder_uri, build_tiny_bundle(tmp_path / "v2", seed=1, metrics=worse).root)
    staging = promote(holder_uri, "tiny", v2, "staging", gates=gates, dry_run=True)
    assert staging.passed and staging.holder is None
    against_prod = promote(holder_uri, "tiny", v2, "staging", baseline_alias=PROD,
                           gates=gates, dry_run=True)
    assert [g.name for g in against_prod.failed] == ["quality.recon_mse"]
    assert against_prod.holder == 1


@pytest.mark.parametrize("uri", ["sqlite-missing", "http"])
def test_unreachable_registry_is_an_infrastructure_error(tmp_path: Path, uri: str) -> None:
    target = (f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}" if uri == "sqlite-missing"
              else f"http://127.0.0.1:{free_port()}")
    report = tmp_path / "promotion.md"
    code, out = _promote(target, 1, "--report", str(report))
    assert code == EXIT_ERROR, out
    assert "unavailable" in out
    assert "**error** (exit code 2)" in report.read_text()
    code, out = _run("rollback", "tiny", "--registry-uri", target)
    assert code == EXIT_ERROR and "unavailable" in out


def test_usage_errors_exit_with_the_infrastructure_code(holder_uri: str, tmp_path: Path) -> None:
    assert _promote(holder_uri, 9)[0] == EXIT_ERROR                       # unknown version
    code, out = _promote(holder_uri, 1, name="nope")
    assert code == EXIT_ERROR and "nope" in out                            # unknown model
    bad = tmp_path / "gates.toml"
    bad.write_text("[latency]\nfactor = 0\n")
    code, out = _promote(holder_uri, 1, "--gates", str(bad))
    assert code == EXIT_ERROR and "latency.factor" in out
    code, out = _run("promote", "tiny", "--version", "1", "--alias", "latest",
                     "--registry-uri", holder_uri)
    assert code == EXIT_ERROR and "reserved" in out
    assert len({EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR}) == 3
