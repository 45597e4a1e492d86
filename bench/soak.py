"""`python -m bench.soak` (`make soak`): a bounded soak of one real server.

Starts `latentserve serve` (embedded backend) as a child process over a throw-away sqlite MLflow
registry holding two tiny generators (`soak-plain`: unconditional with encoder; `soak-cond`:
class-conditional with encoder; built in seconds, so the soak does not depend on the zoo), then
drives every RPC from a few concurrent clients for `--seconds` (default `SOAK_SECONDS` or 600):
good requests and deliberate client mistakes (`bench/soak_calls.py`). Meanwhile the alias
`soak-plain@production` moves between two versions every `--alias-every` seconds (SIGHUP makes
the server follow at once), and the response cache is on (`CACHE_BYTES`; seeds repeat, so it
answers some requests and stays full). It reports the server's RSS (start, after warm-up, peak,
end), the status codes per RPC, the alias moves and the cache's hits, and flags

- an unexpected status: anything but OK for a good request, anything but the expected
  INVALID_ARGUMENT / NOT_FOUND for a mistake;
- RSS growth above 10 % from the end of the warm-up to the end of the run.

The report goes to `--out` (default bench/results) as soak.json + soak.md; the exit status is 1
when anything is flagged. Example::

    SOAK_SECONDS=60 make soak
    python -m bench.soak --seconds 30 --clients 4 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.config import DEFAULT_OUT
from bench.models import Registries
from bench.processes import ServiceProcess
from bench.soak_calls import SEED_POOL, Call, SoakModel, Stubs, soak_calls
from tests.fixtures.tiny import build_tiny_bundle

DEFAULT_SECONDS = 600.0
DEFAULT_ALIAS_EVERY_S = 60.0
"""How often the soak moves soak-plain@production to its other version."""
CACHE_BYTES = 16 * 1024 * 1024
"""Response cache of the soaked server: small enough to fill during the warm-up."""
RSS_GROWTH_LIMIT = 0.10
"""Flag RSS growth above this share (end of run vs. end of warm-up)."""
MISTAKE_SHARE = 0.2
"""Share of calls that are deliberate client mistakes."""
PLAIN = SoakModel("soak-plain", latent_dim=8, shape=(1, 16, 16), num_classes=0,
                  max_batch_size=32)
COND = SoakModel("soak-cond", latent_dim=8, shape=(3, 8, 8), num_classes=3, max_batch_size=32)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Tally:
    """Status codes per RPC and per call kind, with the first unexpected examples."""

    codes: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    by_call: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    unexpected: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    latency_s: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def add(self, call: Call, code: str, detail: str, seconds: float) -> None:
        self.codes[call.rpc][code] += 1
        self.by_call[f"{call.rpc}: {call.name}"][code] += 1
        self.latency_s[call.rpc] += seconds
        if code not in call.expected:
            self.unexpected[call.rpc] += 1
            if len(self.examples) < 20:
                self.examples.append({"rpc": call.rpc, "call": call.name, "code": code,
                                      "expected": "/".join(sorted(call.expected)),
                                      "detail": detail[:300]})


async def _client(address: str, calls: list[Call], seed: int, stop_at: float,
                  tally: Tally) -> None:
    rng = random.Random(seed)
    good = [c for c in calls if not c.mistake]
    mistakes = [c for c in calls if c.mistake]
    stubs = Stubs(address)
    try:
        while time.monotonic() < stop_at:
            call = rng.choice(mistakes if rng.random() < MISTAKE_SHARE else good)
            started = time.perf_counter()
            code, detail = "OK", ""
            try:
                await call.run(stubs, rng)
            except grpc.aio.AioRpcError as exc:
                code, detail = exc.code().name, exc.details() or ""
            except Exception as exc:  # the soak's own bug: count it, never hide it
                code, detail = f"CLIENT_ERROR {type(exc).__name__}", str(exc)
            tally.add(call, code, detail, time.perf_counter() - started)
    finally:
        await stubs.close()


async def _sample_rss(pid: int, samples: list[tuple[float, int]], t0: float,
                      every_s: float = 0.5) -> None:
    while True:
        samples.append((time.monotonic() - t0, rss_bytes(pid)))
        await asyncio.sleep(every_s)


async def _move_aliases(uri: str, pid: int, every_s: float, stop_at: float,
                        moves: list[float], t0: float) -> None:
    """Point soak-plain@production at its other version every `every_s` seconds and tell the
    server at once (SIGHUP), as a promotion and a rollback would."""
    from latentserve.registry.store.mlflow_store import RegistryClient

    registry = RegistryClient(uri)
    version = 1
    while time.monotonic() + every_s < stop_at:
        await asyncio.sleep(every_s)
        version = 3 - version
        await asyncio.to_thread(registry.set_alias, PLAIN.name, "production", version)
        os.kill(pid, signal.SIGHUP)
        moves.append(round(time.monotonic() - t0, 1))


def scrape(metrics_url: str, names: tuple[str, ...]) -> dict[str, float]:
    """The sum of each named metric's samples on the server's /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


async def drive(address: str, pid: int, seconds: float, clients: int, warmup_s: float,
                seed: int = 0, *, uri: str = "", alias_every_s: float = 0.0,
                metrics_url: str = "") -> dict[str, Any]:
    """Run the mix against `address` for `seconds` (moving the alias every `alias_every_s`
    when > 0); the soak's measurements (no verdicts)."""
    calls = soak_calls(PLAIN, COND)
    tally = Tally()
    samples: list[tuple[float, int]] = []
    moves: list[float] = []
    t0 = time.monotonic()
    start_rss = rss_bytes(pid)
    sampler = asyncio.create_task(_sample_rss(pid, samples, t0))
    workers = [asyncio.create_task(_client(address, calls, seed + i, t0 + seconds, tally))
               for i in range(clients)]
    if alias_every_s > 0 and uri:
        workers.append(asyncio.create_task(
            _move_aliases(uri, pid, alias_every_s, t0 + seconds, moves, t0)))
    await asyncio.sleep(min(warmup_s, seconds))
    warm_rss = rss_bytes(pid)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - t0
    sampler.cancel()
    end_rss = rss_bytes(pid)
    samples.append((elapsed, end_rss))
    counters = ("latentserve_response_cache_hits_total", "latentserve_response_cache_misses_total",
                "latentserve_response_cache_bytes", "latentserve_alias_swaps_total")
    cache = scrape(metrics_url, counters) if metrics_url else {}
    return {"elapsed_s": elapsed, "calls": calls, "tally": tally, "samples": samples,
            "alias_moves_at_s": moves, "server": cache,
            "rss": {"start": start_rss, "after_warmup": warm_rss, "end": end_rss,
                    "peak": max([start_rss, end_rss, *(r for _, r in samples)])}}


def build_report(raw: dict[str, Any], *, seconds: float, clients: int, warmup_s: float
                 ) -> dict[str, Any]:
    """The JSON report: RSS, status codes per RPC and per call, what is flagged."""
    tally: Tally = raw["tally"]
    rss = raw["rss"]
    growth = (rss["end"] - rss["after_warmup"]) / rss["after_warmup"] if rss["after_warmup"] \
        else 0.0
    total = sum(sum(c.values()) for c in tally.codes.values())
    rpcs = sorted({c.rpc for c in raw["calls"]})
    samples = raw["samples"]
    step = max(1, len(samples) // 120)
    flags = []
    if sum(tally.unexpected.values()):
        flags.append(f"{sum(tally.unexpected.values())} unexpected statuses")
    silent = [rpc for rpc in rpcs if not tally.codes[rpc]["OK"]]
    if silent:
        flags.append(f"never answered OK: {', '.join(silent)}")
    if not rss["end"]:
        flags.append("the server process was gone at the end")
    swaps = raw.get("server", {}).get("latentserve_alias_swaps_total")
    if raw.get("alias_moves_at_s") and swaps is not None and swaps < len(raw["alias_moves_at_s"]):
        flags.append(f"the server followed {swaps:.0f} of {len(raw['alias_moves_at_s'])} alias "
                     "moves")
    if growth > RSS_GROWTH_LIMIT:
        flags.append(f"RSS grew {growth:.1%} after warm-up (limit {RSS_GROWTH_LIMIT:.0%})")
    return {
        "ok": not flags,
        "flags": flags,
        "config": {"seconds": seconds, "clients": clients, "warmup_s": warmup_s,
                   "mistake_share": MISTAKE_SHARE, "backend": "embedded",
                   "response_cache_bytes": CACHE_BYTES, "seed_pool": SEED_POOL,
                   "models": [vars(PLAIN), vars(COND)]},
        "alias_moves_at_s": raw.get("alias_moves_at_s", []),
        "server_counters": {k: round(v) for k, v in raw.get("server", {}).items()},
        "machine": {"logical_cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "elapsed_s": round(raw["elapsed_s"], 1),
        "calls_total": total,
        "calls_per_s": round(total / raw["elapsed_s"], 1) if raw["elapsed_s"] else 0.0,
        "rss_mib": {k: round(v / 2**20, 1) for k, v in rss.items()},
        "rss_growth_after_warmup": round(growth, 4),
        "rss_growth_limit": RSS_GROWTH_LIMIT,
        "unexpected_total": sum(tally.unexpected.values()),
        "rpcs": {rpc: {"codes": dict(tally.codes[rpc]),
                       "unexpected": tally.unexpected[rpc],
                       "mean_ms": round(1e3 * tally.latency_s[rpc]
                                        / max(1, sum(tally.codes[rpc].values())), 2)}
                 for rpc in rpcs},
        "calls": {name: dict(codes) for name, codes in sorted(tally.by_call.items())},
        "unexpected_examples": tally.examples,
        "rss_timeline_mib": [[round(t, 1), round(r / 2**20, 1)] for t, r in samples[::step]],
    }


def markdown(report: dict[str, Any]) -> str:
    """A short markdown summary of the report."""
    rss = report["rss_mib"]
    codes = sorted({c for r in report["rpcs"].values() for c in r["codes"]},
                   key=lambda c: (c != "OK", c))
    lines = [
        "# Soak",
        "",
        f"{'PASS' if report['ok'] else 'FLAGGED: ' + '; '.join(report['flags'])} — "
        f"{report['elapsed_s']} s, {report['config']['clients']} clients, "
        f"{report['calls_total']:,} calls ({report['calls_per_s']}/s, "
        f"{report['config']['mistake_share']:.0%} deliberate mistakes), embedded backend, "
        f"{report['machine']['logical_cpus']} CPUs. `make soak` (`SOAK_SECONDS`) writes it.",
        "",
        f"Alias moves (soak-plain@production, 1 ⇄ 2) at {report['alias_moves_at_s']} s; "
        f"response cache {report['config']['response_cache_bytes'] // 2**20} MiB: "
        + ", ".join(f"{k.removeprefix('latentserve_')} {v:,}"
                    for k, v in report["server_counters"].items()) + ".",
        "",
        "| server RSS | start | after warm-up | peak | end | growth after warm-up |",
        "|---|---|---|---|---|---|",
        f"| MiB | {rss['start']} | {rss['after_warmup']} | {rss['peak']} | {rss['end']} | "
        f"{report['rss_growth_after_warmup']:+.1%} (limit {report['rss_growth_limit']:.0%}) |",
        "",
        "| RPC | " + " | ".join(codes) + " | unexpected | mean ms |",
        "|---|" + "---|" * len(codes) + "---|---|",
    ]
    for rpc, row in report["rpcs"].items():
        cells = [f"{row['codes'].get(c, 0):,}" for c in codes]
        lines.append(f"| {rpc} | " + " | ".join(cells) + f" | {row['unexpected']} | "
                     f"{row['mean_ms']} |")
    if report["unexpected_examples"]:
        lines += ["", "Unexpected (first ones):", ""]
        lines += [f"- {e['rpc']} ({e['call']}): {e['code']}, expected {e['expected']}: "
                  f"{e['detail']}" for e in report["unexpected_examples"]]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "soak.md").write_text(markdown(report))


def run(seconds: float, clients: int, out: Path, work: Path,
        warmup_s: float | None = None, alias_every_s: float = DEFAULT_ALIAS_EVERY_S
        ) -> dict[str, Any]:
    """Build the bundles and registry in `work`, start the server, soak, write the report."""
    warm = warmup_s if warmup_s is not None else min(60.0, max(2.0, 0.1 * seconds))
    bundles = {m.name: [build_tiny_bundle(
        work / "bundles" / f"{m.name}-v{seed + 1}", name=m.name, latent_dim=m.latent_dim,
        shape=m.shape, num_classes=m.num_classes, max_batch_size=m.max_batch_size, seed=seed)
        for seed in range(2 if m is PLAIN else 1)] for m in (PLAIN, COND)}
    uri = Registries(work / "registries").create(
        "soak", {name: [b.root for b in versions] for name, versions in bundles.items()})
    settings = {"REGISTRY_URI": uri, "DEFAULT_MODEL": PLAIN.name, "CACHE_DIR": str(work / "cache"),
                "LOG_LEVEL": "ERROR", "ACCESS_LOG": "false", "METRICS_ENABLED": "true",
                "RESPONSE_CACHE_BYTES": str(CACHE_BYTES)}
    with ServiceProcess("soak", settings, log_dir=work / "logs") as svc:
        assert svc.pid is not None
        raw = asyncio.run(drive(svc.address, svc.pid, seconds, clients, warm, uri=uri,
                                alias_every_s=alias_every_s, metrics_url=svc.metrics_url))
    report = build_report(raw, seconds=seconds, clients=clients, warmup_s=warm)
    write(report, out)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", DEFAULT_SECONDS)),
                        help="how long to drive the server (default: $SOAK_SECONDS or 600)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--warmup", type=float, default=None,
                        help="warm-up seconds before the RSS baseline (default 10%%, 2–60 s)")
    parser.add_argument("--alias-every", type=float, default=DEFAULT_ALIAS_EVERY_S,
                        help="move soak-plain@production every this many seconds (0: never)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep bundles, registry and server log here (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="latentserve-soak-"))
    try:
        report = run(args.seconds, args.clients, args.out, work, args.warmup,
                     args.alias_every)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(markdown(report))
    print(f"report: {args.out / 'soak.json'}, {args.out / 'soak.md'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
