"""Tracing over HTTP: one SERVER span per request continuing the caller's traceparent, with
the servicer's spans (validation, backend call) as its children."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.service import service_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_http_requests_are_traced(registry_uri: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    settings = service_settings(registry_uri, tmp_path / "cache", http_port=0)
    with BackgroundServer(settings, span_exporter=exporter) as bg:
        assert bg.server is not None
        url = f"http://127.0.0.1:{bg.server.http_port}"
        answer = httpx.post(f"{url}/v1/sample", json={"model": {"name": "tiny"}, "n": 2},
                            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
                            timeout=60)
        assert answer.status_code == 200
        httpx.get(f"{url}/v2/health/ready", timeout=60)
        bg.call(_flush(bg))
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.name == "POST Sample"]
    assert len(server) == 1
    root = server[0]
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert root.attributes["http.response.status_code"] == 200
    children = {s.name for s in spans if s.parent is not None
                and s.parent.span_id == root.context.span_id}
    assert "validation" in children
    assert not [s for s in spans if "oip_ready" in s.name]


async def _flush(bg: BackgroundServer) -> None:
    assert bg.server is not None and bg.server.tracing is not None
    bg.server.tracing.flush()
