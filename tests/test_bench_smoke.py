"""The benchmark harness still runs: `python -m bench --quick` for one scenario writes
well-formed results (JSON with the scenario's keys, RESULTS.md, a plot). Numbers are not
checked; quick mode measures for fractions of a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD_FORMATS = ("float32", "uint8", "png")


@pytest.mark.timeout(240)
def test_quick_payload_scenario_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "payload", "--model", "tiny",
         "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    doc = json.loads((out / "latest.json").read_text())
    assert doc["quick"] is True
    assert doc["machine"]["logical_cpus"] >= 1
    assert doc["setup"]["model"]["source"] == "tiny"
    payload = doc["payload"]
    assert "error" not in payload
    for fmt in PAYLOAD_FORMATS:
        assert payload[fmt]["bytes"] > 0, fmt
        assert payload[fmt]["ms"] > 0, fmt
    assert payload["ok"] is True
    assert payload["float32"]["bytes"] > payload["uint8"]["bytes"]
    targets = {t["key"]: t for t in doc["targets"]}
    assert targets["payload.ok"]["met"] is True
    dated = [p for p in out.glob("results-*.json") if p.name != "latest.json"]
    assert len(dated) == 1 and json.loads(dated[0].read_text()) == doc
    report = (out / "RESULTS.md").read_text()
    assert "## payload" in report and "payload.png" in report
    assert (out / "payload.png").stat().st_size > 0
