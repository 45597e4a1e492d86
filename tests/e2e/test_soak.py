"""The soak script (`make soak`, `python -m bench.soak`) runs bounded: ~10 s against a real
server, every RPC answered, mistakes answered as expected, a well-formed report; and its
verdicts flag what they should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import PLAIN, Tally, build_report, markdown
from bench.soak_calls import soak_calls

REPO_ROOT = Path(__file__).resolve().parents[2]
RPCS = {"Sample", "Interpolate", "StreamInterpolate", "Edit", "Encode", "Decode", "GetModel",
        "ListModels"}


@pytest.mark.timeout(180)
def test_short_soak_runs_every_rpc_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "10", "--clients", "3",
         "--out", str(out), "--work-dir", str(tmp_path / "work")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=150,
        stdin=subprocess.DEVNULL,
    )
    report = json.loads((out / "soak.json").read_text())
    assert done.returncode == (0 if report["ok"] else 1), done.stdout[-3000:] + done.stderr[-3000:]
    # 10 s is too short to judge memory growth (the committed 10-minute run does); what it
    # checks is that every status is the one expected
    assert report["unexpected_total"] == 0, report["unexpected_examples"]
    assert [f for f in report["flags"] if not f.startswith("RSS grew")] == []
    assert set(report["rpcs"]) == RPCS
    for rpc, row in report["rpcs"].items():
        assert row["codes"].get("OK", 0) > 0, rpc
    mistakes = sum(row["codes"].get(code, 0) for row in report["rpcs"].values()
                   for code in ("INVALID_ARGUMENT", "NOT_FOUND"))
    assert mistakes > 0
    rss = report["rss_mib"]
    assert 0 < rss["start"] <= rss["peak"] and 0 < rss["end"] <= rss["peak"]
    assert report["elapsed_s"] >= 10
    md = (out / "soak.md").read_text()
    assert "| server RSS |" in md and "| StreamInterpolate |" in md
    assert (tmp_path / "work" / "logs" / "service-soak.log").is_file()


def _raw(codes: dict[str, int], rss: tuple[int, int, int]) -> dict[str, object]:
    calls = soak_calls(PLAIN, PLAIN)
    tally = Tally()
    good = {c.rpc: c for c in calls if not c.mistake}
    for code, count in codes.items():
        for call in good.values():
            for _ in range(count):
                tally.add(call, code, "detail", 0.01)
    start, warm, end = rss
    return {"elapsed_s": 10.0, "calls": calls, "tally": tally, "samples": [(0.0, start)],
            "rss": {"start": start, "after_warmup": warm, "end": end,
                    "peak": max(start, warm, end)}}


def test_verdicts_flag_unexpected_statuses_and_rss_growth() -> None:
    clean = build_report(_raw({"OK": 3}, (100, 200, 210)), seconds=10, clients=1, warmup_s=2)
    assert clean["ok"] and clean["flags"] == [] and clean["unexpected_total"] == 0
    assert clean["rss_growth_after_warmup"] == pytest.approx(0.05)

    grown = build_report(_raw({"OK": 3}, (100, 200, 221)), seconds=10, clients=1, warmup_s=2)
    assert not grown["ok"] and grown["flags"][0].startswith("RSS grew 10.5%")

    errors = build_report(_raw({"OK": 3, "INTERNAL": 1}, (100, 200, 200)), seconds=10,
                          clients=1, warmup_s=2)
    assert not errors["ok"] and errors["unexpected_total"] == len(RPCS)
    assert errors["rpcs"]["Sample"]["codes"] == {"OK": 3, "INTERNAL": 1}
    assert errors["unexpected_examples"][0]["code"] == "INTERNAL"
    assert "FLAGGED: 8 unexpected statuses" in markdown(errors)
    assert "| RPC | OK | INTERNAL | unexpected | mean ms |" in markdown(errors)
