"""`python -m bench --quick --scenario http` runs end to end (gRPC, HTTP JSON, HTTP binary and
OIP against MLServer) and writes every required key. Numbers are not checked. Runs where the
MLServer venv is already built, like the `peers` smoke test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.results import REQUIRED, lookup
from tests.e2e.test_bench_smoke import run_bench


@pytest.mark.timeout(400)
def test_quick_http_scenario_writes_every_key(tmp_path: Path) -> None:
    from bench.mlserver_venv import existing_mlserver_venv

    if existing_mlserver_venv() is None:
        pytest.skip("the MLServer venv (.venv-mlserver) is not built; "
                    "`python -m bench.mlserver_venv` builds it")
    out = tmp_path / "results"
    run_bench(out, "--scenario", "http", "--model", "zoo", timeout_s=330)
    doc = json.loads((out / "latest.json").read_text())
    assert "error" not in doc["http"], doc["http"].get("error")
    for key in REQUIRED["http"]:
        assert lookup(doc["http"], key) is not None, key
    transports = doc["http"]["transports"]
    assert all(transports[t]["concurrent"]["failed"] == 0 for t in transports)
    assert "## http" in (out / "RESULTS.md").read_text()
