"""OpenTelemetry tracing: one span per RPC, children for the steps, context forwarded to Triton.

Off unless `LATENTSERVE_OTLP_ENDPOINT` is set (or a server is given a span exporter). Then the
gRPC server gets the `opentelemetry-instrumentation-grpc` aio interceptor (one SERVER span per
RPC, continuing a caller's W3C `traceparent`) and the service adds child spans::

    /latentserve.v1.GeneratorService/Sample      (the interceptor's span)
    ├── validation                               (request checks, `span("validation")`)
    └── backend call                             (one per backend request, `span(...)`)
        ├── queue wait                           (in the batcher, `record_batch`)
        └── batch run                            (the batch this request rode in)

`triton_headers()` gives the `traceparent` header for calls to Triton. Disabled, every helper
returns at once (`span` hands back a shared null context): one global read per call. Example::

    tracing = Tracing.from_settings(settings)          # None when tracing is off
    server = grpc.aio.server(interceptors=[tracing.interceptor()] if tracing else [])
    with span("validation"):
        check(request)
    tracing.shutdown()                                 # flushes pending spans

One tracer per process: the most recently set-up `Tracing` receives every child span (the
service runs one server per process; `LATENTSERVE_WORKERS` uses processes).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from latentserve.service.settings import Settings

__all__ = ["Tracing", "enabled", "record_batch", "set_rpc_status", "span", "triton_headers"]

_NULL: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
_tracer: trace.Tracer | None = None
_propagator = TraceContextTextMapPropagator()
UNTRACED_SERVICES = ("grpc.health.v1.Health",)
"""gRPC services whose calls get no span (probes would drown the traces)."""


def enabled() -> bool:
    """Whether tracing is set up in this process and the current RPC is being recorded."""
    return _tracer is not None and trace.get_current_span().is_recording()


def span(name: str, attributes: Mapping[str, Any] | None = None
         ) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current RPC's span (a shared null context when not recording)."""
    tracer = _tracer
    if tracer is None or not trace.get_current_span().is_recording():
        return _NULL
    return tracer.start_as_current_span(name, attributes=attributes)


def record_batch(queued_ns: int, started_ns: int, ended_ns: int, rows: int,
                 batch_rows: int, batch_requests: int) -> None:
    """The batcher's timing of one request, as `queue wait` and `batch run` child spans
    (recorded afterwards: the batch itself ran in the batcher's worker, for several requests)."""
    tracer = _tracer
    if tracer is None or not trace.get_current_span().is_recording():
        return
    tracer.start_span("queue wait", start_time=queued_ns,
                      attributes={"latentserve.rows": rows}).end(started_ns)
    tracer.start_span("batch run", start_time=started_ns, attributes={
        "latentserve.rows": rows, "latentserve.batch.rows": batch_rows,
        "latentserve.batch.requests": batch_requests}).end(ended_ns)


def set_rpc_status(code: str) -> None:
    """Put the RPC's final status on its span (the handler answers through
    `abort_with_status`, which the interceptor does not see)."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    if not current.is_recording():
        return
    number = grpc.StatusCode[code].value[0] if code in grpc.StatusCode.__members__ else 2
    current.set_attribute("rpc.grpc.status_code", number)
    if code != "OK":
        current.set_status(trace.Status(trace.StatusCode.ERROR, code))


def triton_headers() -> dict[str, str] | None:
    """W3C trace-context headers (`traceparent`) for a Triton call; None when not recording."""
    if not enabled():
        return None
    headers: dict[str, str] = {}
    _propagator.inject(headers)
    return headers


class Tracing:
    """A tracer provider with its exporter; `interceptor()` for the server, `shutdown()` at stop."""

    def __init__(self, provider: TracerProvider, *, exporter: SpanExporter | None = None,
                 shutdown_timeout_s: float = 5.0) -> None:
        """`exporter`: the OTLP exporter, stopped outright when a flush at shutdown overruns
        `shutdown_timeout_s` (a dead collector then costs that long, not 30 s)."""
        global _tracer
        self.provider = provider
        self.tracer = provider.get_tracer("latentserve.service")
        self._exporter = exporter
        self.shutdown_timeout_s = shutdown_timeout_s
        _tracer = self.tracer

    @classmethod
    def from_settings(cls, settings: Settings, exporter: SpanExporter | None = None
                      ) -> Tracing | None:
        """Tracing as configured (OTLP to `otlp_endpoint`), or with `exporter` (tests, custom
        back ends: spans are exported as they end); None when neither is set."""
        if exporter is None and not settings.otlp_endpoint:
            return None
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: settings.otel_service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            # http:// means plaintext, https:// TLS (OTEL_EXPORTER_OTLP_INSECURE overrides);
            # every export, retries included, ends within otlp_timeout_s
            timeout_s = settings.otlp_timeout_s
            otlp = OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=timeout_s)
            provider.add_span_processor(
                BatchSpanProcessor(otlp, export_timeout_millis=timeout_s * 1000))
            return cls(provider, exporter=otlp, shutdown_timeout_s=timeout_s)
        return cls(provider)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """The grpc.aio server interceptor that opens each RPC's span (health excluded)."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        untraced = filters.any_of(*(filters.service_name(s) for s in UNTRACED_SERVICES))
        make: Any = aio_server_interceptor  # untyped
        interceptor: grpc.aio.ServerInterceptor = make(self.provider, filters.negate(untraced))
        return interceptor

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Export the spans that have ended so far."""
        return bool(self.provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self) -> bool:
        """Flush and stop exporting; child spans stop unless another Tracing is set up.

        Waits at most `shutdown_timeout_s` for the flush, then stops the exporter (its retries
        and its channel) and returns False: the spans not yet exported are dropped rather
        than holding the process past its grace period.
        """
        global _tracer
        if _tracer is self.tracer:
            _tracer = None
        stopping = threading.Thread(target=self.provider.shutdown, name="otel-shutdown",
                                    daemon=True)
        stopping.start()
        stopping.join(self.shutdown_timeout_s)
        if not stopping.is_alive():
            return True
        if self._exporter is not None:
            self._exporter.shutdown()  # aborts the retry wait, closes the channel
        stopping.join(min(1.0, self.shutdown_timeout_s))
        return False

