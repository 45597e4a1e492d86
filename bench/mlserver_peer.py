"""Seldon MLServer (mlserver-mlflow runtime) serving the benchmark's decoder: the `peers` peer.

The decoder ONNX is logged with `mlflow.onnx.log_model` into a throw-away sqlite registry by
the MLServer venv's python (`bench/mlserver_log_model.py`, a subprocess), and each
`MLServerProcess` serves `models:/decoder@production` from it with one server configuration
(`PeerConfig`). The harness talks to it over the V2 / Open Inference gRPC protocol with
tritonclient and never imports mlserver (the two clash in one process). Example::

    decoder = log_decoder(venv, bundle, work / "mlserver")
    with MLServerProcess(venv, decoder, PeerConfig("pw0-off", parallel_workers=0,
                                                   batching=False), work / "mlserver") as srv:
        srv.grpc_url                        # "127.0.0.1:<port>", model name `decoder`
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.config import REPO_ROOT
from latentserve.registry.bundle.files import Bundle
from latentserve.service.devtools.processes import ChildProcess, free_port, http_ok

LOG_SCRIPT = REPO_ROOT / "bench" / "mlserver_log_model.py"
MODEL_NAME = "decoder"
BATCH_SIZE = 64
BATCH_TIME_S = 0.002


class MLServerError(RuntimeError):
    """Logging the model or starting MLServer failed; the message carries the output tail."""


@dataclass(frozen=True)
class RegisteredDecoder:
    """The decoder logged in the peer's registry: where MLServer finds it."""

    tracking_uri: str
    model_uri: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PeerConfig:
    """One MLServer configuration. None leaves MLServer's own default: `parallel_workers`
    (server setting), `batching` (adaptive batching: max_batch_size 64, max_batch_time 2 ms
    when on; off when False), `debug` (access logs and DEBUG logging)."""

    label: str
    parallel_workers: int | None = None
    batching: bool | None = None
    debug: bool | None = None

    def server_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parallel_workers is not None:
            out["parallel_workers"] = self.parallel_workers
        if self.debug is not None:
            out["debug"] = self.debug
        return out

    def model_settings(self) -> dict[str, Any]:
        if self.batching is None:
            return {}
        if self.batching:
            return {"max_batch_size": BATCH_SIZE, "max_batch_time": BATCH_TIME_S}
        return {"max_batch_size": 0, "max_batch_time": 0}

    def facts(self) -> dict[str, Any]:
        """The settings as recorded in the results (None: MLServer's default)."""
        return {"parallel_workers": self.parallel_workers,
                "adaptive_batching": (None if self.batching is None else
                                      {"max_batch_size": BATCH_SIZE,
                                       "max_batch_time_s": BATCH_TIME_S}
                                      if self.batching else False),
                "debug": self.debug}


def _env(tracking_uri: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LATENTSERVE_", "MLFLOW_", "PYTHON"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
        env["MLFLOW_REGISTRY_URI"] = tracking_uri
    return env


def log_decoder(venv: Path, bundle: Bundle, work: Path) -> RegisteredDecoder:
    """Log `bundle`'s decoder into a fresh registry under `work` (in the MLServer venv)."""
    registry = work / "registry"
    registry.mkdir(parents=True, exist_ok=False)
    tracking_uri = f"sqlite:///{(registry / 'mlflow.db').absolute()}"
    dec = bundle.spec.decoder
    cmd = [str(venv / "bin" / "python"), str(LOG_SCRIPT), "--onnx", str(bundle.decoder_path),
           "--latent-dim", str(bundle.spec.latent_dim), "--input", dec.input,
           "--tracking-uri", tracking_uri, "--artifacts", str(registry / "artifacts")]
    if dec.condition_input is not None:
        cmd += ["--condition-input", dec.condition_input,
                "--num-classes", str(bundle.spec.num_classes)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=registry, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=600)
    if done.returncode != 0:
        raise MLServerError(f"logging the decoder failed (exit {done.returncode}):\n"
                            f"{(done.stdout + done.stderr)[-4000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return RegisteredDecoder(tracking_uri, str(info["model_uri"]), info)


class MLServerProcess:
    """`mlserver start` with one `PeerConfig` on free 127.0.0.1 ports, in its own process
    group (parallel workers are its children)."""

    def __init__(self, venv: Path, decoder: RegisteredDecoder, config: PeerConfig, work: Path,
                 ready_timeout_s: float = 180.0) -> None:
        self.venv = venv
        self.decoder = decoder
        self.config = config
        self.folder = work / f"server-{config.label}"
        self.log_path = work / f"mlserver-{config.label}.log"
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.ready_timeout_s = ready_timeout_s
        self.startup_s: float | None = None
        self._child = ChildProcess(f"mlserver {config.label}", log_path=self.log_path,
                                   own_group=True, error=MLServerError)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def write_settings(self) -> None:
        """settings.json (server) and decoder/model-settings.json in the model folder."""
        model_dir = self.folder / MODEL_NAME
        model_dir.mkdir(parents=True, exist_ok=True)
        server = {"host": "127.0.0.1", "http_port": self.http_port, "grpc_port": self.grpc_port,
                  "metrics_port": self.metrics_port, **self.config.server_settings()}
        model = {"name": MODEL_NAME, "implementation": "mlserver_mlflow.MLflowRuntime",
                 "parameters": {"uri": self.decoder.model_uri},
                 **self.config.model_settings()}
        (self.folder / "settings.json").write_text(json.dumps(server, indent=2))
        (model_dir / "model-settings.json").write_text(json.dumps(model, indent=2))

    def start(self) -> MLServerProcess:
        """Start the server and wait until the decoder answers ready."""
        self.write_settings()
        t0 = time.perf_counter()
        self._child.start([str(self.venv / "bin" / "mlserver"), "start", str(self.folder)],
                          env=_env(self.decoder.tracking_uri), cwd=self.folder)
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{MODEL_NAME}/ready"
        try:
            self._child.wait_until(lambda: http_ok(url), self.ready_timeout_s, interval_s=0.2)
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - t0, 2)
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout_s` (and to workers that
        outlived the main process)."""
        self._child.stop(timeout_s, group=True)

    def log_tail(self, max_chars: int = 4000) -> str:
        return self._child.output_tail(max_chars)

    def __enter__(self) -> MLServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
