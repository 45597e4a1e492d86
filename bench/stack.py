"""What the scenarios run against, started on first use and shared within one harness run:
the chosen bundle in a throw-away registry, the service with the embedded backend, a local
tritonserver, and the service with the Triton backend. Example::

    with Stack(cfg) as stack:
        svc = stack.embedded()            # ServiceProcess, started now or reused
        triton = stack.triton_server()    # TritonProcess
        svc_t = stack.triton_service()    # service → that tritonserver (python flavour)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.config import REPO_ROOT, RunConfig
from bench.models import ChosenModel, Registries, choose_bundle
from bench.processes import ServiceProcess
from latentserve.service.devtools.triton_local import TritonProcess, ensure_triton_venv

MODEL_VERSION = 1
"""The registry version every shared service serves (production → v1)."""


class Stack:
    """Lazily started services of one run; `close()` stops them in reverse order. `model`:
    the bundle to serve (default: `choose_bundle(cfg)` on first use)."""

    def __init__(self, cfg: RunConfig, model: ChosenModel | None = None) -> None:
        self.cfg = cfg
        self.work = cfg.work_dir
        self._model: ChosenModel | None = model
        self._registry: str | None = None
        self.registries = Registries(cfg.work_dir / "registries")
        self._services: dict[str, ServiceProcess] = {}
        self._triton: TritonProcess | None = None
        self._stack = contextlib.ExitStack()

    # -- pieces ----------------------------------------------------------------------------

    @property
    def model(self) -> ChosenModel:
        if self._model is None:
            self._model = choose_bundle(self.cfg)
        return self._model

    @property
    def registry_uri(self) -> str:
        if self._registry is None:
            self._registry = self.registries.create("main",
                                                    {self.model.name: [self.model.bundle.root]})
        return self._registry

    def service_settings(self, **extra: str) -> dict[str, str]:
        """The env settings (without the LATENTSERVE_ prefix) of a service on this registry."""
        return {"REGISTRY_URI": self.registry_uri, "DEFAULT_MODEL": self.model.name,
                "CACHE_DIR": str(self.work / "cache"), **extra}

    def start_service(self, label: str, settings: dict[str, str]) -> ServiceProcess:
        """Start (and register for closing) a service process with these settings.

        The response cache is off unless `settings` turn it on: the scenarios repeat requests
        (the same images, seeds from 0 in every phase) and measure computing them."""
        profile = self.cfg.profile_dir if self.cfg.profile else None
        svc = ServiceProcess(label, {"RESPONSE_CACHE_BYTES": "0", **settings,
                                     **self.cfg.service_settings},
                             log_dir=self.work / "logs", profile_dir=profile)
        self._stack.enter_context(svc)
        self._services[label] = svc
        return svc

    def embedded(self) -> ServiceProcess:
        """The service with the embedded ONNX Runtime backend."""
        if "embedded" not in self._services:
            self.start_service("embedded", self.service_settings())
        return self._services["embedded"]

    def triton_server(self) -> TritonProcess:
        """A local CPU tritonserver (explicit model control; the service loads the model)."""
        if self._triton is None:
            venv = Path(os.environ.get("LATENTSERVE_TRITON_VENV", REPO_ROOT / ".venv-triton"))
            server = TritonProcess(self.work / "triton-models", venv=ensure_triton_venv(venv),
                                   log_path=self.work / "logs" / "tritonserver.log")
            self._triton = self._stack.enter_context(server)
        return self._triton

    def triton_service(self) -> ServiceProcess:
        """The service with the Triton backend, pointed at `triton_server()` (python flavour)."""
        if "triton" not in self._services:
            server = self.triton_server()
            settings = self.service_settings(
                BACKEND="triton", TRITON_URL=server.grpc_url, TRITON_FLAVOR="python",
                TRITON_MODEL_CONTROL="explicit")
            self.start_service("triton", settings)
        return self._services["triton"]

    @property
    def triton_model(self) -> str:
        """The Triton model name of the served decoder (`<name>__v1`)."""
        from latentserve.registry.triton.export import triton_model_name

        return triton_model_name(self.model.name, MODEL_VERSION)

    def facts(self) -> dict[str, Any]:
        """How the services under test were run (for the report)."""
        return {
            "model": self.model.facts() if self._model is not None else None,
            "services": {label: {"settings": {k: v for k, v in svc.settings.items()
                                              if k not in ("PORT", "METRICS_PORT")},
                                 "startup_s": svc.startup_s}
                         for label, svc in self._services.items()},
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._services.clear()
        self._triton = None
        self._stack.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
