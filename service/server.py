"""The gRPC server: GeneratorService + grpc.health.v1 + reflection + /metrics, with drain.

Example (what `latentserve serve` does)::

    server = LatentServer(Settings())
    await server.start()          # binds, starts loading the default model
    await server.wait_for_shutdown_signal()   # SIGTERM/SIGINT
    await server.stop()           # NOT_SERVING → drain in-flight (grace) → unload
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.auth import TokenAuthInterceptor, TokenFile
from latentserve.service.backends.factory import BackendFactory, backend_factory
from latentserve.service.grpc_errors import Admission, add_servicer
from latentserve.service.limits import CallLimits
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.manager import ModelManager
from latentserve.service.oip.grpc_service import add_to_server as add_oip
from latentserve.service.oip.infer import OipCore
from latentserve.service.response_cache import ResponseCache
from latentserve.service.servicer import GeneratorServicer
from latentserve.service.settings import HEALTH_SERVICE_NAME, Settings
from latentserve.service.startup_errors import StartupError
from latentserve.service.tracing import Tracing
from latentserve.v1 import generator_pb2 as pb

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from latentserve.service.backends.triton_leases import TritonLeases
    from latentserve.service.http.server import HttpServer

log = get_logger(__name__)
_QUIET_S = 0.5
"""Drain: how long no new handler may start before the gRPC server is stopped. Under a loaded
CPU an accepted RPC can wait longer than a few tens of milliseconds for its handler (the event
loop is busy encoding other responses), and stopping gRPC then cancels it unanswered."""


class LatentServer:
    """One service instance: gRPC server, model manager, metrics endpoint."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: RegistryClient | None = None,
        factory: BackendFactory | None = None,
        span_exporter: SpanExporter | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`span_exporter`: trace to it (as `LATENTSERVE_OTLP_ENDPOINT` traces to a collector);
        `reuse_port`: share the port with other worker processes (SO_REUSEPORT)."""
        self.settings = settings
        self._reuse_port = reuse_port
        self.metrics = ServiceMetrics()
        self.health = health.aio.HealthServicer()
        self.response_cache = ResponseCache(settings.response_cache_bytes,
                                            settings.response_cache_max_key_bytes, self.metrics)
        registry = registry or RegistryClient(settings.registry_uri)
        self.leases = triton_leases(settings, registry)
        self.manager = ModelManager(
            settings,
            registry,
            factory or backend_factory(settings, self.metrics, self.leases),
            self.metrics,
            on_health=self._set_health,
            on_retire=self.response_cache.drop_version,
        )
        self._server: grpc.aio.Server | None = None
        self._health_tasks: set[asyncio.Task[None]] = set()
        """Health updates and SIGHUP refreshes in flight (kept referenced until done)."""
        self.port = 0
        self.metrics_port = 0
        self.admission = Admission()
        self._span_exporter = span_exporter
        self.tracing: Tracing | None = None
        self.servicer: GeneratorServicer | None = None
        self.oip: OipCore | None = None
        self._http: HttpServer | None = None
        self.http_port = 0

    def _set_health(self, service: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        names = [service] if service else ["", HEALTH_SERVICE_NAME]
        for name in names:
            task = asyncio.get_running_loop().create_task(self.health.set(name, status))
            self._health_tasks.add(task)
            task.add_done_callback(self._health_tasks.discard)

    def _build(self) -> grpc.aio.Server:
        s = self.settings
        interceptors = []
        self.tracing = Tracing.from_settings(s, self._span_exporter)
        if self.tracing is not None:  # first, so refused calls are traced too
            interceptors.append(self.tracing.interceptor())
        if s.auth_token_file is not None:
            tokens = TokenFile(s.auth_token_file)  # an empty/unreadable file fails here
            interceptors.append(TokenAuthInterceptor(
                tokens, self.metrics, s.exempt_services(),
                failures_per_minute=s.auth_failures_per_minute))
        self.limits = CallLimits(max_calls=s.max_concurrent_rpcs,
                                 max_open_streams=s.max_unauthenticated_streams,
                                 exempt=s.exempt_services())
        interceptors.append(self.limits)
        server = grpc.aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=self.limits.backstop(),
            options=[
                ("grpc.max_send_message_length", s.max_message_bytes),
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
            ],
        )
        servicer = GeneratorServicer(s, self.manager, self.metrics, self.response_cache)
        self.admission = servicer.admission
        add_servicer(servicer, server, pb.DESCRIPTOR.services_by_name["GeneratorService"])
        self.servicer, self.oip = servicer, OipCore(servicer, self.manager)
        add_oip(self.oip, server)  # inference.GRPCInferenceService beside it
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [pb.DESCRIPTOR.services_by_name["GeneratorService"].full_name,
             health.SERVICE_NAME, reflection.SERVICE_NAME],
            server,
        )
        address = f"{s.host}:{s.port}"
        try:
            if s.tls_cert_file is not None and s.tls_key_file is not None:
                client_ca = s.tls_client_ca_file.read_bytes() if s.tls_client_ca_file else None
                credentials = grpc.ssl_server_credentials(
                    [(s.tls_key_file.read_bytes(), s.tls_cert_file.read_bytes())],
                    root_certificates=client_ca,
                    require_client_auth=client_ca is not None,
                )
                self.port = server.add_secure_port(address, credentials)
            else:
                self.port = server.add_insecure_port(address)
        except OSError as exc:
            raise StartupError(f"TLS files cannot be read: {exc}") from None
        except RuntimeError as exc:  # gRPC's "Failed to bind to address …"
            raise StartupError(f"cannot serve on {address} (LATENTSERVE_HOST/PORT): "
                               f"{exc}") from None
        return server

    async def start(self) -> None:
        """Bind the ports and start serving; the default model loads in the background."""
        self._server = self._build()
        if self.settings.metrics_enabled:
            try:
                self.metrics_port = self.metrics.serve_http(self.settings.host,
                                                            self.settings.metrics_port)
            except OSError as exc:
                raise StartupError(f"cannot serve metrics on {self.settings.host}:"
                                   f"{self.settings.metrics_port} (LATENTSERVE_METRICS_PORT): "
                                   f"{exc}") from None
        await self._server.start()
        if self.settings.http_port is not None:
            from latentserve.service.http.server import build_http_server

            self._http = build_http_server(
                self.settings, self.servicer, self.oip, self.metrics, reuse_port=self._reuse_port,
                tracer=self.tracing.tracer if self.tracing is not None else None)
            self.http_port = await self._http.start()
        await self.manager.start()
        log.info("serving", address=f"{self.settings.host}:{self.port}",
                 metrics_port=self.metrics_port, backend=self.settings.backend,
                 registry=self.settings.registry_uri)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: health NOT_SERVING, answer new RPCs UNAVAILABLE, let running ones finish,
        then stop gRPC and unload.

        RPCs gRPC has accepted but not yet handed to a handler would be cancelled unanswered
        by an immediate `server.stop`; the drain keeps the server open until no handler runs
        and none has started for `_QUIET_S`, so each of those gets UNAVAILABLE (which clients
        retry) or its result. The whole stop stays within the grace period.
        """
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.admission.draining = True
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._drain(deadline)
            if self._http is not None:
                await self._http.stop()
            await self._server.stop(max(0.0, deadline - loop.time()))
        await self.manager.close()
        if self.leases is not None:
            await self.leases.close()
        self.metrics.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes; may wait on a collector
        log.info("stopped")

    async def _drain(self, deadline: float) -> None:
        """Return once no admitted handler runs and none was admitted for _QUIET_S: calls
        refused UNAVAILABLE while draining do not count, so steady traffic does not hold
        the stop for the whole grace period."""
        loop = asyncio.get_running_loop()
        seen = -1
        while loop.time() < deadline:
            if self.admission.working == 0 and self.admission.admitted == seen:
                return
            seen = self.admission.admitted
            await asyncio.sleep(min(_QUIET_S, max(0.0, deadline - loop.time())))

    def refresh_on_sighup(self) -> None:
        """Re-resolve the served aliases at once on SIGHUP (e.g. right after a promotion),
        instead of at the next registry poll."""
        loop = asyncio.get_running_loop()

        async def refresh() -> None:
            log.info("SIGHUP: re-resolving aliases")
            try:
                await self.manager.refresh()
            except Exception as exc:  # logged; the poll keeps following the aliases
                log.exception("alias refresh on SIGHUP failed", error=str(exc))

        def start_refresh() -> None:
            task = loop.create_task(refresh())
            self._health_tasks.add(task)
            task.add_done_callback(self._health_tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, start_refresh)

    async def wait_for_shutdown_signal(self, stop: asyncio.Event | None = None) -> None:
        """Return on SIGTERM or SIGINT (or when `stop` is set, e.g. by a worker's lifeline)."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutdown signal received; draining", grace_s=self.settings.grace_period_s)


def triton_leases(settings: Settings, registry: RegistryClient) -> TritonLeases | None:
    """Leases on shared Triton models when this replica loads them itself (explicit mode)."""
    if settings.backend != "triton" or settings.triton_model_control != "explicit":
        return None
    from latentserve.service.backends.triton_leases import TritonLeases

    return TritonLeases(settings, registry)


async def serve(settings: Settings, on_ready: Callable[[LatentServer], None] | None = None) -> None:
    """Run a server until SIGTERM/SIGINT, then drain and return (SIGHUP: re-resolve aliases)."""
    server = LatentServer(settings)
    await server.start()
    server.refresh_on_sighup()
    if on_ready is not None:
        asyncio.get_running_loop().create_task(_when_ready(server, on_ready))
    await server.wait_for_shutdown_signal()
    await server.stop()


async def _when_ready(server: LatentServer, on_ready: Callable[[LatentServer], None]) -> None:
    await server.manager.wait_ready()
    on_ready(server)
