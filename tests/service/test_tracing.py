"""OpenTelemetry tracing: the span tree of a traced server (in-memory exporter, real server on a
free port), OTLP export to a collector, the trace context sent to Triton, and nothing traced
when tracing is not configured."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from latentserve.client import Client
from latentserve.core.errors import Unavailable
from latentserve.registry.bundle.files import Bundle
from latentserve.service import tracing
from latentserve.service.backends.triton import TritonBackend
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import Settings
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import service_settings

SERVICE = "/latentserve.v1.GeneratorService"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
TRACEPARENT = f"00-{TRACE_ID:032x}-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def traced(registry_uri: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[BackgroundServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    settings = service_settings(registry_uri, tmp_path_factory.mktemp("cache"))
    with BackgroundServer(settings, span_exporter=exporter) as bg:
        yield bg, exporter


def _spans(exporter: InMemorySpanExporter, rpcs: int = 0) -> list[ReadableSpan]:
    """The finished spans (cleared), once `rpcs` RPC spans are among them: a server span
    ends just after its response is sent."""
    deadline = time.monotonic() + 10
    while True:
        spans = list(exporter.get_finished_spans())
        if sum(s.name.startswith(SERVICE) for s in spans) >= rpcs or time.monotonic() > deadline:
            exporter.clear()
            return spans
        time.sleep(0.01)


def _rpc_span(spans: list[ReadableSpan], method: str) -> ReadableSpan:
    found = [s for s in spans if s.name == f"{SERVICE}/{method}"]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans
            if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_sample_span_tree(traced: tuple[BackgroundServer, InMemorySpanExporter]) -> None:
    server, exporter = traced
    _spans(exporter)
    with Client(server.address, timeout_s=30) as client:
        client.sample("tiny", n=4, seed=1)
    spans = _spans(exporter, rpcs=2)  # GetModel (the SDK's first look) and Sample
    rpc = _rpc_span(spans, "Sample")
    assert rpc.parent is None  # no caller context: a new trace
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 0
    assert rpc.status.status_code != StatusCode.ERROR
    children = _children(spans, rpc)
    assert {s.name for s in children} == {"validation", "backend call"}
    call = next(s for s in children if s.name == "backend call")
    assert call.attributes is not None
    assert (call.attributes["latentserve.component"], call.attributes["latentserve.rows"],
            call.attributes["latentserve.backend"]) == ("decoder", 4, "embedded")
    below = {s.name: s for s in _children(spans, call)}
    assert set(below) == {"queue wait", "batch run"}
    assert below["batch run"].attributes is not None
    assert below["batch run"].attributes["latentserve.batch.rows"] >= 4
    # the batcher's spans tile the backend call: queue wait, then the batch run
    assert call.start_time is not None and call.end_time is not None
    wait, run = below["queue wait"], below["batch run"]
    assert wait.start_time is not None and wait.end_time is not None
    assert run.start_time is not None and run.end_time is not None
    assert call.start_time <= wait.start_time <= wait.end_time == run.start_time
    assert run.start_time <= run.end_time <= call.end_time
    assert rpc.context is not None
    tree = sorted(s.name for s in spans
                  if s.context is not None and s.context.trace_id == rpc.context.trace_id)
    assert tree == [f"{SERVICE}/Sample", "backend call", "batch run", "queue wait",
                    "validation", "validation"]  # request checks; labels once the model is known


def test_chunks_get_one_backend_call_each(
        traced: tuple[BackgroundServer, InMemorySpanExporter]) -> None:
    server, exporter = traced
    _spans(exporter)
    with Client(server.address, timeout_s=30) as client:
        client.sample("tiny", n=40, seed=1)  # max_batch_size 16: three chunks
    spans = _spans(exporter, rpcs=2)
    calls = [s for s in _children(spans, _rpc_span(spans, "Sample")) if s.name == "backend call"]
    assert sorted(s.attributes["latentserve.rows"] for s in calls if s.attributes) == [8, 16, 16]


def test_caller_traceparent_is_continued(
        traced: tuple[BackgroundServer, InMemorySpanExporter]) -> None:
    server, exporter = traced
    _spans(exporter)
    with grpc.insecure_channel(server.address) as channel:
        pb_grpc.GeneratorServiceStub(channel).Sample(
            pb.SampleRequest(model=pb.ModelRef(name="tiny"), n=1, seed=2),
            metadata=(("traceparent", TRACEPARENT),), timeout=30)
    spans = _spans(exporter, rpcs=1)
    rpc = _rpc_span(spans, "Sample")
    assert rpc.context is not None and rpc.context.trace_id == TRACE_ID
    assert rpc.parent is not None and rpc.parent.span_id == 0xB7AD6B7169203331


def test_client_mistake_marks_rpc_and_validation_spans(
        traced: tuple[BackgroundServer, InMemorySpanExporter]) -> None:
    server, exporter = traced
    _spans(exporter)
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as err:
        pb_grpc.GeneratorServiceStub(channel).Sample(
            pb.SampleRequest(model=pb.ModelRef(name="tiny"), n=0), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    spans = _spans(exporter, rpcs=1)
    rpc = _rpc_span(spans, "Sample")
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 3
    assert rpc.status.status_code == StatusCode.ERROR
    (validation,) = _children(spans, rpc)
    assert validation.name == "validation" and validation.status.status_code == StatusCode.ERROR


def test_every_rpc_gets_a_span(traced: tuple[BackgroundServer, InMemorySpanExporter]) -> None:
    server, exporter = traced
    _spans(exporter)
    with Client(server.address, timeout_s=30) as client:
        client.list_models()
        client.get_model("tiny")
        z = client.sample("tiny", n=2, seed=3, output="png")
        client.decode("tiny", z.latents)
        client.encode("tiny", z.png)
        client.interpolate("tiny", seeds=[1, 2], steps=3)
        list(client.stream_interpolate("tiny", seeds=[1, 2], steps=20))
        client.edit("tiny", seeds=[1], direction="d0", strengths=[-1, 1])
    with grpc.insecure_channel(server.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    spans = _spans(exporter, rpcs=8)
    names = sorted(s.name.rsplit("/", 1)[1] for s in spans if s.name.startswith(SERVICE))
    assert names == sorted(["ListModels", "GetModel", "Sample", "Decode", "Encode",
                            "Interpolate", "StreamInterpolate", "Edit"])
    assert not [s for s in spans if "Health" in s.name]  # probes are not traced
    encode = _rpc_span(spans, "Encode")
    call = next(s for s in _children(spans, encode) if s.name == "backend call")
    assert call.attributes is not None and call.attributes["latentserve.component"] == "encoder"
    stream = _rpc_span(spans, "StreamInterpolate")
    assert len([s for s in _children(spans, stream) if s.name == "backend call"]) == 2


def test_nothing_traced_unless_configured(registry_uri: str, tmp_path: Path) -> None:
    settings = service_settings(registry_uri, tmp_path)
    assert settings.otlp_endpoint is None
    assert tracing.Tracing.from_settings(settings) is None
    # another traced component in the process must not make this server emit spans
    exporter = InMemorySpanExporter()
    other = _tracing_with(exporter)
    try:
        with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=30) as client:
            assert bg.server is not None and bg.server.tracing is None
            client.sample("tiny", n=4, seed=1)
            client.edit("tiny", seeds=[1], direction="d0", strengths=[1])
        assert exporter.get_finished_spans() == ()
    finally:
        other.shutdown()
    assert not tracing.enabled()


def _tracing_with(exporter: InMemorySpanExporter) -> tracing.Tracing:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing.Tracing(provider)


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
               context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_otlp_endpoint_exports_to_a_collector(registry_uri: str, tmp_path: Path) -> None:
    collector = _Collector()
    grpc_server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        settings = service_settings(registry_uri, tmp_path,
                                    otlp_endpoint=f"http://127.0.0.1:{port}",
                                    otel_service_name="latentserve-test")
        with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=30) as client:
            client.sample("tiny", n=2, seed=1)
        # stopping the server flushed its spans to the collector
    finally:
        grpc_server.stop(None)
    names, services = set(), set()
    for request in collector.requests:
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes
                         if a.key == "service.name"}
            for scope in resource_spans.scope_spans:
                names |= {s.name for s in scope.spans}
    assert services == {"latentserve-test"}
    assert {f"{SERVICE}/Sample", "validation", "backend call", "queue wait",
            "batch run"} <= names


# -- the trace context sent to Triton -------------------------------------------------------

class _FakeTriton:
    """A gRPC server answering as Triton: models ready; every inference recorded, then
    refused with UNAVAILABLE (only the metadata matters here)."""

    def __init__(self) -> None:
        from tritonclient.grpc import service_pb2

        self.infer_metadata: list[dict[str, str]] = []

        def ready(request: Any, context: grpc.ServicerContext) -> Any:
            return service_pb2.ModelReadyResponse(ready=True)

        def infer(request: Any, context: grpc.ServicerContext) -> Any:
            self.infer_metadata.append(dict(context.invocation_metadata()))
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake triton")

        def handler(fn: Any, request_type: Any, response_type: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString)

        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {
                "ModelReady": handler(ready, service_pb2.ModelReadyRequest,
                                      service_pb2.ModelReadyResponse),
                "ModelInfer": handler(infer, service_pb2.ModelInferRequest,
                                      service_pb2.ModelInferResponse),
            }),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


async def test_trace_context_is_forwarded_to_triton(tiny_bundle: Bundle) -> None:
    fake = _FakeTriton()
    exporter = InMemorySpanExporter()
    traced = _tracing_with(exporter)
    settings = Settings(backend="triton", triton_url=f"127.0.0.1:{fake.port}",
                        triton_model_control="none")
    backend = TritonBackend(tiny_bundle, settings, version=1)
    try:
        await backend.load()
        z = np.zeros((2, tiny_bundle.spec.latent_dim), np.float32)
        with pytest.raises(Unavailable):  # not recording: no header
            await backend.decode(z)
        with traced.tracer.start_as_current_span("rpc") as parent, pytest.raises(Unavailable):
            await backend.decode(z)
        await asyncio.sleep(0)
    finally:
        traced.shutdown()
        fake.server.stop(None)
    untraced_call, traced_call = fake.infer_metadata
    assert "traceparent" not in untraced_call
    _, trace_id, span_id, _ = traced_call["traceparent"].split("-")
    assert int(trace_id, 16) == parent.get_span_context().trace_id
    call = next(s for s in exporter.get_finished_spans() if s.name == "backend call")
    assert call.context is not None and int(span_id, 16) == call.context.span_id
    assert call.attributes is not None and call.attributes["latentserve.backend"] == "triton"
