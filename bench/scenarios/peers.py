"""`peers`: latentserve against the nearest off-the-shelf server, MLServer + mlserver-mlflow.

The same decoder ONNX is logged with `mlflow.onnx.log_model` into a throw-away registry and
served by MLServer 1.7 (its own venv, `.venv-mlserver`, built on first use) in five
configurations one after the other: its defaults (parallel_workers 1, adaptive batching off,
debug on), and `parallel_workers` 0 / 1 × adaptive batching on (64 rows, 2 ms) / off with debug
off (quick mode: two of them). Each configuration meets three loads, each measured right
before the same load on the embedded latentserve service (interleaved, so both see the same
machine): one client × n=64 (`batched`), 64 clients × n=1 (`concurrent`), one client × n=1
(`sequential`). MLServer gets the V2 protocol over gRPC from tritonclient.grpc.aio with the same
latents and class labels the decoder takes in-process (latents float32 [n, N], labels int64
[n]); latentserve gets Sample through the SDK. Per load, MLServer's best configuration is
reported (`mlserver.settings` names it); ratios compare latentserve with that best.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient

from bench.config import RunConfig
from bench.load import LoadResult, Request, closed_loop, ratio, rounded
from bench.mlserver_peer import (
    MODEL_NAME,
    MLServerProcess,
    PeerConfig,
    RegisteredDecoder,
    log_decoder,
)
from bench.mlserver_venv import MLSERVER_PINS, TORCH_PIN, ensure_mlserver_venv
from bench.models import ChosenModel
from bench.probes import Probe, add, derived, group_pids
from bench.results import scenario_targets
from bench.stack import Stack
from latentserve.client import AsyncClient
from latentserve.core.seeding import sample_latents
from latentserve.service.backends.embedded import make_session

OUTPUT = "float32"
LOADS = {"batched": (1, 64), "concurrent": (64, 1), "sequential": (1, 1)}
"""load name → (concurrency, items per request)."""
CONFIGS = (
    PeerConfig("defaults"),
    PeerConfig("workers0-batching", parallel_workers=0, batching=True, debug=False),
    PeerConfig("workers0-nobatching", parallel_workers=0, batching=False, debug=False),
    PeerConfig("workers1-batching", parallel_workers=1, batching=True, debug=False),
    PeerConfig("workers1-nobatching", parallel_workers=1, batching=False, debug=False),
)
QUICK_CONFIGS = ("defaults", "workers0-nobatching")
"""Quick mode (a harness check) starts only these two: each MLServer start takes seconds."""
CHANNEL_ARGS = [("grpc.max_send_message_length", 64 * 2**20),
                ("grpc.max_receive_message_length", 64 * 2**20)]


def v2_request(client: InferenceServerClient, chosen: ChosenModel,
               pool: list[np.ndarray]) -> Callable[[int], Request]:
    """A factory: n → request sending n pre-drawn latents (+ the labels latentserve's request
    i carries, int64 [n]) to MLServer's decoder over V2 gRPC."""
    dec = chosen.bundle.spec.decoder

    def for_n(n: int) -> Request:
        async def one(i: int) -> int:
            feed = chosen.decoder_feed(pool[i % len(pool)][:n], start=i)
            inputs = []
            for name, array in feed.items():
                kind = "INT64" if array.dtype == np.int64 else "FP32"
                item = grpcclient.InferInput(name, list(array.shape), kind)
                item.set_data_from_numpy(np.ascontiguousarray(array))
                inputs.append(item)
            result = await client.infer(MODEL_NAME, inputs)
            out = result.as_numpy(dec.output)
            if out is None:
                raise RuntimeError(f"MLServer's answer has no output {dec.output!r}: "
                                   f"{[o.name for o in result.get_response().outputs]}")
            return int(out.shape[0])
        return one

    return for_n


async def outputs_match(client: InferenceServerClient, chosen: ChosenModel) -> dict[str, Any]:
    """MLServer's images for 4 items vs onnxruntime in this process on the same inputs."""
    spec = chosen.bundle.spec
    feed = chosen.decoder_feed(sample_latents(3, 4, spec.latent_dim), start=1)
    inputs = []
    for name, array in feed.items():
        item = grpcclient.InferInput(name, list(array.shape),
                                     "INT64" if array.dtype == np.int64 else "FP32")
        item.set_data_from_numpy(np.ascontiguousarray(array))
        inputs.append(item)
    got = (await client.infer(MODEL_NAME, inputs)).as_numpy(spec.decoder.output)
    want = make_session(chosen.bundle.decoder_path, 0).run(None, feed)[0]
    if got is None or got.shape != want.shape:
        return {"match": False, "max_abs_diff": None}
    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
    return {"match": bool(diff <= 1e-5), "max_abs_diff": diff}


def figures(results: dict[str, LoadResult]) -> dict[str, Any]:
    """The headline figures of one server: images/s per load and the sequential p50."""
    return {"batched_ips": round(results["batched"].items_per_s, 1),
            "concurrent_ips": round(results["concurrent"].items_per_s, 1),
            "sequential_ips": round(results["sequential"].items_per_s, 1),
            "sequential_p50_ms": rounded(results["sequential"].p(50)),
            "failed": sum(r.failed for r in results.values()),
            "errors": [e for r in results.values() for e in r.errors][:3]}


def best(configs: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Per load the best configuration's figure (most images/s; lowest sequential p50)."""
    top: dict[str, Any] = {}
    won: dict[str, str] = {}
    if not configs:
        return top, won
    for load in LOADS:
        key = f"{load}_ips"
        label = max(configs, key=lambda c: configs[c][key] or 0.0)
        top[key], won[load] = configs[label][key], label
    measured = {c: v for c, v in configs.items() if v["sequential_p50_ms"] is not None}
    if measured:
        label = min(measured, key=lambda c: measured[c]["sequential_p50_ms"])
        top["sequential_p50_ms"] = measured[label]["sequential_p50_ms"]
        won["sequential_p50"] = label
    else:
        top["sequential_p50_ms"] = None
    return top, won


async def run(stack: Stack, cfg: RunConfig, *,
              configs_only: Sequence[str] | None = None) -> dict[str, Any]:
    """The scenario; `configs_only` names the MLServer configurations to run (default: all,
    quick mode `QUICK_CONFIGS`)."""
    chosen = stack.model
    spec = chosen.bundle.spec
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.5, 0.05), cfg.pick(2, 1)
    venv = await asyncio.to_thread(ensure_mlserver_venv)
    work = cfg.work_dir / "mlserver"
    decoder: RegisteredDecoder = await asyncio.to_thread(log_decoder, venv, chosen.bundle, work)
    svc = stack.embedded()
    pool = [sample_latents(seed, 64, spec.latent_dim) for seed in range(16)]
    ours: dict[str, LoadResult] = {}
    ours_raw: dict[str, dict[str, float]] = {}
    configs: dict[str, dict[str, Any]] = {}
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client:

        def via_service(n: int) -> Request:
            async def one(i: int) -> int:
                return len(await client.sample(chosen.name, n=n, seed=i, output=OUTPUT,
                                               class_labels=chosen.labels(n, i)))
            return one

        svc_probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids})
        wanted = configs_only or (QUICK_CONFIGS if cfg.quick else [c.label for c in CONFIGS])
        chosen_configs = [c for c in CONFIGS if c.label in wanted]
        for config in chosen_configs:
            configs[config.label] = await measure_config(
                config, venv, decoder, work, chosen, pool, via_service, svc_probe,
                ours, ours_raw, seconds=seconds, warmup=warmup, rounds=rounds)
    theirs, won = best({k: v for k, v in configs.items() if "error" not in v})
    latent = figures(ours) if ours else {}
    return {
        "mlserver": {**theirs, "settings": won, "defaults": configs.get("defaults"),
                     "configs": configs},
        "latentserve": latent,
        "concurrent_ratio": ratio(latent.get("concurrent_ips"), theirs.get("concurrent_ips")),
        "batched_ratio": ratio(latent.get("batched_ips"), theirs.get("batched_ips")),
        "sequential_ratio": ratio(latent.get("sequential_ips"), theirs.get("sequential_ips")),
        "sequential_p50_ratio": ratio(latent.get("sequential_p50_ms"),
                                      theirs.get("sequential_p50_ms")),
        "sequential_p50_below": (None if latent.get("sequential_p50_ms") is None
                                 or theirs.get("sequential_p50_ms") is None
                                 else latent["sequential_p50_ms"] < theirs["sequential_p50_ms"]),
        "targets": scenario_targets("peers"),
        "settings": {"loads": {k: {"concurrency": c, "n": n} for k, (c, n) in LOADS.items()},
                     "seconds_per_round": seconds, "rounds": rounds, "warmup_s": warmup,
                     "mlserver_venv": [TORCH_PIN, *MLSERVER_PINS],
                     "mlserver_model": decoder.model_uri,
                     "mlserver_signature": decoder.info.get("signature"),
                     "mlserver_packages": decoder.info.get("packages"),
                     "protocol": "V2 gRPC (tritonclient.grpc.aio), raw tensor contents",
                     "latentserve": "embedded service, Sample via the SDK",
                     "sequential_p50_ratio": "latentserve p50 ÷ MLServer's best p50"},
        "modes": {"latentserve." + k: {**r.summary(), **derived(ours_raw[k])}
                  for k, r in ours.items()},
    }


async def measure_config(config: PeerConfig, venv: Path, decoder: RegisteredDecoder, work: Path,
                         chosen: ChosenModel, pool: list[np.ndarray],
                         via_service: Callable[[int], Request], svc_probe: Probe,
                         ours: dict[str, LoadResult], ours_raw: dict[str, dict[str, float]], *,
                         seconds: float, warmup: float, rounds: int) -> dict[str, Any]:
    """Start MLServer with `config`, measure it and (interleaved) latentserve; stop it."""
    server = MLServerProcess(venv, decoder, config, work)
    try:
        await asyncio.to_thread(server.start)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[-3000:], "settings": config.facts()}
    theirs: dict[str, LoadResult] = {}
    raw: dict[str, dict[str, float]] = {}
    pgid = server.pid or -1
    probe = Probe({"harness": lambda: [os.getpid()], "mlserver": lambda: group_pids(pgid)})
    client = InferenceServerClient(server.grpc_url, channel_args=CHANNEL_ARGS)
    try:
        check = await outputs_match(client, chosen)
        direct = v2_request(client, chosen, pool)
        for _ in range(rounds):
            for load, (concurrency, n) in LOADS.items():
                for make, prb, sink, sink_raw in ((direct, probe, theirs, raw),
                                                  (via_service, svc_probe, ours, ours_raw)):
                    res, delta = await prb.measure(closed_loop(
                        make(n), concurrency=concurrency, duration_s=seconds,
                        warmup_s=warmup))
                    sink[load] = sink[load].merge(res) if load in sink else res
                    sink_raw[load] = add(sink_raw.get(load, {}), delta)
    finally:
        await client.close()
        startup = server.startup_s
        await asyncio.to_thread(server.stop)
    return {**figures(theirs), "outputs": check, "settings": config.facts(),
            "startup_s": startup,
            "modes": {k: {**r.summary(), **derived(raw[k])} for k, r in theirs.items()}}
