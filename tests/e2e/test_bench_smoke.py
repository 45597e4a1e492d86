"""The benchmark harness still runs: `python -m bench --quick` writes well-formed results
(JSON with the scenarios' keys, RESULTS.md, plots). Numbers are not checked; quick mode measures
for fractions of a second. The `peers` and `realistic` scenarios run only where the MLServer venv
is already built (building it takes minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_FORMATS = ("float32", "uint8", "png")


def run_bench(out: Path, *args: str, timeout_s: float = 200) -> None:
    """`python -m bench --quick ... --out out`; fails the test with the output tail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.mark.timeout(240)
def test_quick_payload_scenario_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run_bench(out, "--scenario", "payload", "--model", "tiny")

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


@pytest.mark.timeout(360)
def test_quick_cache_workers_and_transport_scenarios_on_the_zoo_model(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run_bench(out, "--scenario", "cache,workers,transport", "--model", "zoo", timeout_s=300)

    doc = json.loads((out / "latest.json").read_text())
    model = doc["setup"]["model"]
    assert model["source"] == "zoo" and model["num_classes"] == 3
    cache, workers = doc["cache"], doc["workers"]
    assert "error" not in cache and "error" not in workers
    assert cache["bit_identical"] is True
    assert cache["hit_speedup"] > 0 and isinstance(cache["setting_known"], bool)
    assert cache["modes"]["hit"]["failed"] == 0 and cache["modes"]["miss"]["failed"] == 0
    assert [p["workers"] for p in workers["curve"]] == [1, 2]
    for point in workers["curve"]:
        assert point["concurrent_ips"] > 0 and point["sequential_ips"] > 0
        assert point["failed"] == 0
    targets = {t["key"]: t for t in doc["targets"]}
    assert targets["cache.bit_identical"]["met"] is True
    assert targets["batching.concurrent_vs_triton_direct"]["value"] is None  # not run
    report = (out / "RESULTS.md").read_text()
    assert "## cache" in report and "## workers" in report
    assert (out / "cache.png").stat().st_size > 0 and (out / "workers.png").stat().st_size > 0
    transport = doc["transport"]
    assert set(transport["variants"]) == {"aio", "aio-uvloop", "sync", "sync-loop"}
    assert transport["floor_cpu_ms_per_request"] > 0 and "## transport" in report


@pytest.mark.timeout(600)
def test_quick_peers_and_realistic_scenarios_when_the_mlserver_venv_is_built(
        tmp_path: Path) -> None:
    from bench.mlserver_venv import existing_mlserver_venv

    if existing_mlserver_venv() is None:
        pytest.skip("the MLServer venv (.venv-mlserver) is not built; "
                    "`python -m bench.mlserver_venv` builds it")
    out = tmp_path / "results"
    run_bench(out, "--scenario", "peers,realistic", "--model", "zoo", timeout_s=570)

    doc = json.loads((out / "latest.json").read_text())
    peers = doc["peers"]
    assert "error" not in peers
    configs = peers["mlserver"]["configs"]
    assert set(configs) == {"defaults", "workers0-nobatching"}  # quick mode's two
    assert all("error" not in c for c in configs.values()), configs
    assert all(c["outputs"]["match"] for c in configs.values())
    assert peers["concurrent_ratio"] > 0 and peers["latentserve"]["sequential_p50_ms"] > 0

    # the DCGAN decoder through batching, triton and MLServer at its best setting
    realistic = doc["realistic"]
    assert realistic["model"]["export"]["parameters"] == 3_576_704
    assert realistic["model"]["source"] == "realistic" and realistic["model"]["latent_dim"] == 100
    for part in ("reference", "batching", "triton", "peers"):
        assert "error" not in realistic[part], realistic[part]["error"]
    assert set(realistic["peers"]["mlserver"]["configs"]) == {"workers0-nobatching"}
    assert realistic["peers"]["mlserver"]["configs"]["workers0-nobatching"]["outputs"]["match"]
    assert realistic["triton"]["avg_batch_direct"] >= 1
    targets = {t["key"]: t for t in doc["targets"]}
    for key in ("batched_vs_inprocess_ratio", "concurrent_vs_inprocess_ratio",
                "sequential_p50_overhead_ms", "concurrent_vs_mlserver_ratio"):
        assert targets[f"realistic.{key}"]["value"] is not None, key
    report = (out / "RESULTS.md").read_text()
    assert "## realistic" in report and "### realistic · triton" in report
    assert (out / "realistic.png").stat().st_size > 0
