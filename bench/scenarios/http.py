"""`http`: the same small requests over gRPC, HTTP JSON and HTTP binary on one service, and the
Open Inference Protocol's infer through tritonclient on latentserve and on MLServer.

One service process serves both ports (`LATENTSERVE_HTTP_PORT`). Transports, interleaved
round by round on the same service: `grpc` (the SDK's AsyncClient), `http_json` (aiohttp, `POST
/v1/sample`, the reply parsed as JSON) and `http_binary` (aiohttp, binary protobuf at the Connect
path, the reply parsed as a GenerateResponse). Loads: 64 clients × Sample n=1 (`concurrent`)
and one client × n=1 back to back (`sequential`), float32 output. Per transport: requests/s,
p50 and the service's CPU ms per request (`/proc`), and ratios against gRPC.

OIP: decode n=1 (`latent` FP32 [1, N] + `class_label`) through `tritonclient.grpc.aio` on the
service's gRPC port (`latentserve_grpc`) and `tritonclient.http.aio` on its HTTP port
(`latentserve_http`), against MLServer 1.7 + mlserver-mlflow serving the same decoder ONNX
(`mlserver_grpc`, the `peers` scenario's setup, in the configuration that was its best for
small requests there: inference in the server process, adaptive batching off). Ratios:
latentserve's OIP gRPC over MLServer's (requests/s) and their p50s.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc.aio import InferenceServerClient as GrpcOip
from tritonclient.http.aio import InferenceServerClient as HttpOip

from bench.config import RunConfig
from bench.load import LoadResult, Request, closed_loop, ratio, rounded
from bench.mlserver_peer import MODEL_NAME, MLServerProcess, PeerConfig, log_decoder
from bench.mlserver_venv import ensure_mlserver_venv
from bench.models import ChosenModel
from bench.probes import Probe, add, group_pids
from bench.stack import Stack
from latentserve.client import AsyncClient
from latentserve.core.seeding import sample_latents
from latentserve.service.devtools.processes import free_port
from latentserve.v1 import generator_pb2 as pb

LOADS = {"concurrent": 64, "sequential": 1}
"""load name → concurrent clients (each request: one item)."""
TRANSPORTS = ("grpc", "http_json", "http_binary")
OIP_SERVERS = ("latentserve_grpc", "latentserve_http", "mlserver_grpc")
MLSERVER = PeerConfig("workers0-nobatching", parallel_workers=0, batching=False, debug=False)


def figures(result: LoadResult, cpu_s: float | None, client_s: float | None = None
            ) -> dict[str, Any]:
    """Throughput, latency, and CPU per request of the server and of the load generator."""
    return {"client_cpu_ms_per_request": (rounded(1e3 * client_s / result.requests)
                                          if client_s and result.requests else None),
            "rps": round(result.requests / result.elapsed_s, 1) if result.elapsed_s else None,
            "p50_ms": rounded(result.p(50)), "p90_ms": rounded(result.p(90)),
            "failed": result.failed, "errors": result.errors[:3],
            "cpu_ms_per_request": (rounded(1e3 * cpu_s / result.requests)
                                   if cpu_s is not None and result.requests else None)}


def transport_requests(chosen: ChosenModel, client: AsyncClient, http: aiohttp.ClientSession,
                       base: str) -> dict[str, Request]:
    """One request factory per transport: request i samples seed i, one item."""
    name = chosen.name

    async def grpc(i: int) -> int:
        return len(await client.sample(name, n=1, seed=i, output="float32",
                                       class_labels=chosen.labels(1, i)))

    async def http_json(i: int) -> int:
        body = {"model": {"name": name}, "n": 1, "seed": i, "output": "OUTPUT_FORMAT_FLOAT32",
                "classLabels": chosen.labels(1, i) or []}
        async with http.post(f"{base}/v1/sample", json=body) as answer:
            answer.raise_for_status()
            reply = await answer.json()
        return int(reply["latents"]["shape"][0])

    async def http_binary(i: int) -> int:
        request = pb.SampleRequest(model=pb.ModelRef(name=name), n=1, seed=i,
                                   output=pb.OUTPUT_FORMAT_FLOAT32,
                                   class_labels=chosen.labels(1, i) or [])
        async with http.post(f"{base}/latentserve.v1.GeneratorService/Sample",
                             data=request.SerializeToString(),
                             headers={"content-type": "application/proto"}) as answer:
            answer.raise_for_status()
            reply = pb.GenerateResponse.FromString(await answer.read())
        return int(reply.latents.shape[0])

    return {"grpc": grpc, "http_json": http_json, "http_binary": http_binary}


def oip_request(client: Any, module: Any, model: str, chosen: ChosenModel, pool: np.ndarray, *,
                mlserver: bool) -> Request:
    """Decode one pre-drawn latent through an OIP client (MLServer takes the ONNX input names
    and int64 labels; latentserve its OIP names `latent` and `class_label`)."""
    dec = chosen.bundle.spec.decoder

    async def one(i: int) -> int:
        z = pool[i % len(pool)][None]
        labels = chosen.label_array(1, i)
        feed = {dec.input if mlserver else "latent": z}
        if labels is not None:
            key = (dec.condition_input or "label") if mlserver else "class_label"
            feed[key] = labels if mlserver else labels.astype(np.int32)
        inputs = []
        for key, array in feed.items():
            kind = {np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}.get(array.dtype,
                                                                                  "FP32")
            item = module.InferInput(key, list(array.shape), kind)
            item.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(item)
        result = await client.infer(model, inputs)
        out = result.as_numpy(dec.output if mlserver else "image")
        return int(out.shape[0])

    return one


async def measure(requests: dict[str, Request], probes: dict[str, Probe],
                  results: dict[str, dict[str, LoadResult]], cpu: dict[str, dict[str, float]],
                  *, seconds: float, warmup: float, rounds: int, cpu_key: dict[str, str]) -> None:
    """Interleave every request kind under every load for `rounds` rounds."""
    for _ in range(rounds):
        for load, concurrency in LOADS.items():
            for kind, request in requests.items():
                res, delta = await probes[kind].measure(closed_loop(
                    request, concurrency=concurrency, duration_s=seconds, warmup_s=warmup))
                sink = results.setdefault(kind, {})
                sink[load] = sink[load].merge(res) if load in sink else res
                raw = cpu.setdefault(kind, {})
                cpu[kind] = add(raw, {load: delta.get(cpu_key[kind], 0.0),
                                      f"{load}.harness": delta.get("cpu_s.harness", 0.0)})


def section(results: dict[str, dict[str, LoadResult]], cpu: dict[str, dict[str, float]]
            ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, loads in results.items():
        raw = cpu.get(kind, {})
        out[kind] = {load: figures(r, raw.get(load), raw.get(f"{load}.harness"))
                     for load, r in loads.items()}
        out[kind]["concurrent_rps"] = out[kind]["concurrent"]["rps"]
        out[kind]["sequential_p50_ms"] = out[kind]["sequential"]["p50_ms"]
        out[kind]["cpu_ms_per_request"] = out[kind]["concurrent"]["cpu_ms_per_request"]
    return out


async def run(stack: Stack, cfg: RunConfig) -> dict[str, Any]:
    chosen = stack.model
    seconds, warmup, rounds = cfg.pick(3.0, 0.3), cfg.pick(0.5, 0.05), cfg.pick(2, 1)
    http_port = free_port()
    svc = stack.start_service("http", stack.service_settings(HTTP_PORT=str(http_port)))
    base = f"http://127.0.0.1:{http_port}"
    pool = sample_latents(5, 256, chosen.bundle.spec.latent_dim)
    probe = Probe({"harness": lambda: [os.getpid()], "service": svc.pids})
    connector = aiohttp.TCPConnector(limit=80)
    results: dict[str, dict[str, LoadResult]] = {}
    cpu: dict[str, dict[str, float]] = {}
    async with AsyncClient(svc.address, retries=0, timeout_s=60) as client, \
            aiohttp.ClientSession(connector=connector) as http:
        requests = transport_requests(chosen, client, http, base)
        await measure(requests, dict.fromkeys(requests, probe), results, cpu, seconds=seconds,
                      warmup=warmup, rounds=rounds, cpu_key=dict.fromkeys(requests,
                                                                          "cpu_s.service"))
    transports = section(results, cpu)
    oip = await oip_section(stack, cfg, chosen, svc, base, pool, seconds=seconds, warmup=warmup,
                            rounds=rounds)
    grpc_t = transports["grpc"]
    return {
        "transports": transports,
        "http_json_vs_grpc_concurrent": ratio(transports["http_json"]["concurrent_rps"],
                                              grpc_t["concurrent_rps"]),
        "http_binary_vs_grpc_concurrent": ratio(transports["http_binary"]["concurrent_rps"],
                                                grpc_t["concurrent_rps"]),
        "http_json_vs_grpc_cpu": ratio(transports["http_json"]["cpu_ms_per_request"],
                                       grpc_t["cpu_ms_per_request"]),
        "http_binary_vs_grpc_cpu": ratio(transports["http_binary"]["cpu_ms_per_request"],
                                         grpc_t["cpu_ms_per_request"]),
        "http_json_vs_grpc_sequential_p50": ratio(transports["http_json"]["sequential_p50_ms"],
                                                  grpc_t["sequential_p50_ms"]),
        "oip": oip,
        "settings": {"loads": LOADS, "seconds_per_round": seconds, "rounds": rounds,
                     "warmup_s": warmup, "output": "float32", "items_per_request": 1,
                     "mlserver": MLSERVER.facts(),
                     "clients": "grpc: latentserve.client.AsyncClient; http: "
                                "aiohttp.ClientSession (80 keep-alive connections); oip: "
                                "tritonclient.grpc.aio / tritonclient.http.aio"},
    }


async def oip_section(stack: Stack, cfg: RunConfig, chosen: ChosenModel, svc: Any, base: str,
                      pool: np.ndarray, *, seconds: float, warmup: float, rounds: int
                      ) -> dict[str, Any]:
    """OIP decode on latentserve (both ports) and on MLServer, interleaved."""
    results: dict[str, dict[str, LoadResult]] = {}
    cpu: dict[str, dict[str, float]] = {}
    grpc_oip = GrpcOip(svc.address)
    http_oip = HttpOip(base.removeprefix("http://"), conn_limit=80)
    requests: dict[str, Request] = {
        "latentserve_grpc": oip_request(grpc_oip, grpcclient, chosen.name, chosen, pool,
                                        mlserver=False),
        "latentserve_http": oip_request(http_oip, httpclient, chosen.name, chosen, pool,
                                        mlserver=False),
    }
    harness = {"harness": lambda: [os.getpid()]}
    probes = {"latentserve_grpc": Probe({**harness, "service": svc.pids}),
              "latentserve_http": Probe({**harness, "service": svc.pids})}
    keys = {"latentserve_grpc": "cpu_s.service", "latentserve_http": "cpu_s.service",
            "mlserver_grpc": "cpu_s.mlserver"}
    server: MLServerProcess | None = None
    mlserver_error = None
    try:
        try:
            venv = await asyncio.to_thread(ensure_mlserver_venv)
            work = cfg.work_dir / "mlserver-http"
            decoder = await asyncio.to_thread(log_decoder, venv, chosen.bundle, work)
            server = MLServerProcess(venv, decoder, MLSERVER, work)
            await asyncio.to_thread(server.start)
            pgid = server.pid or -1
            ml_client = GrpcOip(server.grpc_url)
            requests["mlserver_grpc"] = oip_request(ml_client, grpcclient, MODEL_NAME, chosen,
                                                    pool, mlserver=True)
            probes["mlserver_grpc"] = Probe({**harness, "mlserver": _pids(pgid)})
        except Exception as exc:  # recorded; latentserve's figures still stand
            mlserver_error = f"{type(exc).__name__}: {exc}"[-2000:]
        await measure(requests, probes, results, cpu, seconds=seconds, warmup=warmup,
                      rounds=rounds, cpu_key=keys)
    finally:
        await grpc_oip.close()
        await http_oip.close()
        if "mlserver_grpc" in requests:
            await ml_client.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
    out = section(results, cpu)
    ours, theirs = out.get("latentserve_grpc", {}), out.get("mlserver_grpc", {})
    out["concurrent_ratio"] = ratio(ours.get("concurrent_rps"), theirs.get("concurrent_rps"))
    out["sequential_p50_ratio"] = ratio(ours.get("sequential_p50_ms"),
                                        theirs.get("sequential_p50_ms"))
    out["http_vs_grpc_concurrent"] = ratio(out.get("latentserve_http", {}).get("concurrent_rps"),
                                           ours.get("concurrent_rps"))
    if mlserver_error is not None:
        out["mlserver_error"] = mlserver_error
    return out


def _pids(pgid: int) -> Callable[[], list[int]]:
    return lambda: group_pids(pgid)
