"""`python -m bench`: run benchmark scenarios, write JSON results, RESULTS.md and plots.

Usage (from the repository root)::

    python -m bench                                  # all scenarios → bench/results, RESULTS.md
    python -m bench --scenario triton,latency        # some; other sections of latest.json stay
    python -m bench --quick --scenario payload --out /tmp/b    # seconds-long harness check
    python -m bench --render-only                    # redo RESULTS.md + plots from latest.json
    python -m bench --profile --scenario batching    # + py-spy/cProfile profiles

Exit status 0 when every scenario ran and produced all of its required keys, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.config import DEFAULT_OUT, DEFAULT_REPORT, QUICK_OUT, REPO_ROOT, RunConfig
from bench.machine import load_average, machine_facts
from bench.plots import write_plots
from bench.profiling import SpyRecorder, py_spy, write_pstats_summary
from bench.report import render
from bench.results import LATEST, merge_previous, missing_keys, new_document, now_iso, write_json
from bench.scenarios import SCENARIOS, load_scenario
from bench.stack import Stack

ANALYSIS = REPO_ROOT / "bench" / "ANALYSIS.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", default=[],
                        help=f"scenario(s) to run, comma-separated or repeated; one of "
                             f"{', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long durations: checks the harness, not the service")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {DEFAULT_OUT.relative_to(REPO_ROOT)}, "
                             f"quick: {QUICK_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--report", type=Path, default=None,
                        help="RESULTS.md path (default bench/RESULTS.md for the default "
                             "folder, else <out>/RESULTS.md)")
    parser.add_argument("--model", choices=["auto", "zoo", "tiny", "realistic"], default="auto",
                        help="auto: generators/zoo/sprites-vae if present, else a tiny "
                             "stand-in of its size; realistic: the DCGAN decoder the "
                             "`realistic` scenario builds, in every scenario")
    parser.add_argument("--profile", action="store_true",
                        help="profile the services and the harness (py-spy when installed, "
                             "else cProfile); writes <out>/profiles/*.txt summaries")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a service setting for every service started, e.g. "
                             "--set INTRA_OP_THREADS=1 (LATENTSERVE_ prefix optional)")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the scratch folder (registries, service logs)")
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite RESULTS.md and plots from <out>/latest.json")
    return parser.parse_args(argv)


def service_overrides(items: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs (optional LATENTSERVE_ prefix) → settings; exits naming a bad one."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().upper().removeprefix("LATENTSERVE_")
        if not sep or not key:
            raise SystemExit(f"--set: expected KEY=VALUE, got {item!r}")
        overrides[key] = value
    return overrides


def selected(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for item in args.scenario for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"--scenario: unknown {unknown}; choose from {', '.join(SCENARIOS)}")
    return names or list(SCENARIOS)


async def run_scenarios(cfg: RunConfig, names: list[str]) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    """Run the scenarios in order on one shared Stack; a failing scenario records its error."""
    sections: dict[str, Any] = {}
    run_id = now_iso()
    with Stack(cfg) as stack:
        for name in names:
            print(f"[bench] {name} …", file=sys.stderr, flush=True)
            meta: dict[str, Any] = {"run": run_id, "started": now_iso(),
                                    "load_average_before": load_average()}
            t0 = time.perf_counter()
            try:
                section = await load_scenario(name)(stack, cfg)
            except Exception:
                section = {"error": traceback.format_exc()[-6000:]}
            meta |= {"seconds": round(time.perf_counter() - t0, 1),
                     "load_average_after": load_average()}
            sections[name] = {**section, "meta": meta}
            state = "failed" if "error" in section else "done"
            print(f"[bench] {name} {state} in {meta['seconds']} s", file=sys.stderr, flush=True)
        setup = stack.facts()
    setup["harness"] = "one process, asyncio AsyncClient tasks; services in subprocesses"
    return sections, setup


@contextlib.contextmanager
def harness_profile(cfg: RunConfig) -> Iterator[None]:
    """Profile this process (the load generator) while the block runs, when asked to."""
    if not cfg.profile:
        yield
        return
    cfg.profile_dir.mkdir(parents=True, exist_ok=True)
    if py_spy() is not None:
        with SpyRecorder(os.getpid(), cfg.profile_dir / "harness.folded"):
            yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(cfg.profile_dir / "harness.prof")
        write_pstats_summary(cfg.profile_dir / "harness.prof", cfg.profile_dir / "harness.txt")


def write_report(doc: dict[str, Any], out_dir: Path, report_path: Path) -> dict[str, Path]:
    """Plots into `out_dir` and the Markdown report (+ ANALYSIS.md for full runs)."""
    plots = write_plots(doc, out_dir)
    analysis = None if doc.get("quick") else ANALYSIS
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render(doc, plots=plots, report_path=report_path, analysis=analysis))
    return plots


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = (args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)).absolute()
    report = args.report or (DEFAULT_REPORT if out == DEFAULT_OUT else out / "RESULTS.md")
    if args.render_only:
        try:
            doc = json.loads((out / LATEST).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--render-only: cannot read {out / LATEST}: {exc}") from None
        plots = write_report(doc, out, report)
        print(f"[bench] wrote {report} and {len(plots)} plots", file=sys.stderr)
        return 0
    overrides = service_overrides(args.settings)
    names = selected(args)
    work = Path(tempfile.mkdtemp(prefix="latentserve-bench-"))
    cfg = RunConfig(quick=args.quick, out_dir=out, report_path=report.absolute(),
                    model=args.model, profile=args.profile, work_dir=work,
                    service_settings=overrides)
    machine = machine_facts()
    with harness_profile(cfg):
        sections, setup = asyncio.run(run_scenarios(cfg, names))
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    doc = new_document(quick=cfg.quick, command=command, machine=machine, setup=setup,
                       sections=sections)
    doc = merge_previous(doc, out / LATEST, SCENARIOS)
    latest, _ = write_json(doc, cfg.out_dir)
    write_report(doc, cfg.out_dir, cfg.report_path)
    problems = {n: missing_keys(doc, n) for n in names}
    failed = [n for n in names if "error" in sections[n] or problems[n]]
    for target in doc["targets"]:
        print(f"[bench] {target['key']} = {target['value']} (target {target['op']} "
              f"{target['target']}: {target['met']})", file=sys.stderr)
    print(f"[bench] wrote {latest}, {cfg.report_path}", file=sys.stderr)
    if failed:
        for n in failed:
            detail = sections[n].get("error") or f"missing keys {problems[n]}"
            print(f"[bench] {n} FAILED: {detail}", file=sys.stderr)
        print(f"[bench] scratch folder kept for the logs: {work}", file=sys.stderr)
        return 1
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0
