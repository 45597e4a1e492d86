"""Prometheus metrics of one server instance (`latentserve_` prefix), on their own registry.

Each `ServiceMetrics` owns a CollectorRegistry, so several servers (tests, benchmarks) can run
in one process. Example::

    metrics = ServiceMetrics()
    metrics.requests.labels(rpc="Sample", model="sprites-vae", code="OK").inc()
    metrics.serve_http("127.0.0.1", 9464)   # GET /metrics

With several worker processes (`LATENTSERVE_WORKERS`) each worker runs with
`PROMETHEUS_MULTIPROC_DIR` set, so its values go to files there; the parent serves one /metrics
for all of them (`serve_multiprocess_http`). Each gauge names how workers' values combine
(`multiprocess_mode`; ignored in a single process).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
_COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServiceMetrics:
    """Every metric the service records; labels are bounded (rpc, model name, component)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._http_server: Any = None
        self._rpc_series: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        r = self.registry
        self.requests = Counter(
            "latentserve_requests", "RPCs handled, by final status code.",
            ["rpc", "model", "code"], registry=r,
        )
        self.latency = Histogram(
            "latentserve_request_latency_seconds", "RPC latency from receipt to response.",
            ["rpc", "model"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.items = Histogram(
            "latentserve_request_items", "Items (latents/images) produced or consumed per RPC.",
            ["rpc"], buckets=_COUNT_BUCKETS, registry=r,
        )
        self.inflight = Gauge(
            "latentserve_inflight_requests", "RPCs being handled now.", registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_size = Histogram(
            "latentserve_backend_batch_size", "Rows per backend call (after batching).",
            ["model", "component"], buckets=_COUNT_BUCKETS, registry=r,
        )
        self.backend_latency = Histogram(
            "latentserve_backend_latency_seconds", "Duration of one backend call.",
            ["model", "component"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.queue_items = Gauge(
            "latentserve_queue_items", "Rows waiting in a batch queue.",
            ["model", "component"], registry=r, multiprocess_mode="livesum",
        )
        self.background_queue_items = Gauge(
            "latentserve_background_queue_items",
            "Rows of background work (projection searches) waiting in a batch queue; they get "
            "a capped share of each batch.",
            ["model", "component"], registry=r, multiprocess_mode="livesum",
        )
        self.loaded_versions = Gauge(
            "latentserve_loaded_versions", "Model versions loaded on the backend.",
            ["model"], registry=r, multiprocess_mode="livemax",
        )
        self.serving_version = Gauge(
            "latentserve_serving_version", "Version each alias of a model resolves to now.",
            ["model", "alias"], registry=r, multiprocess_mode="livemostrecent",
        )
        self.alias_swaps = Counter(
            "latentserve_alias_swaps", "Times an alias moved and the service switched versions.",
            ["model", "alias"], registry=r,
        )
        self.model_load_failures = Counter(
            "latentserve_model_load_failures", "Failed loads or warm-ups of a model version.",
            ["model"], registry=r,
        )
        self.watch_errors = Counter(
            "latentserve_alias_watch_errors",
            "Unexpected errors in the alias watcher (it logs them and keeps polling).",
            registry=r,
        )
        self.auth_failures = Counter(
            "latentserve_auth_failures",
            "RPCs refused UNAUTHENTICATED, by reason (missing, malformed, wrong token).",
            ["reason"], registry=r,
        )
        self.registry_errors = Counter(
            "latentserve_registry_errors", "Failed registry calls (unreachable, unreadable).",
            registry=r,
        )
        self.registry_up = Gauge(
            "latentserve_registry_up", "1 when the last registry call succeeded, else 0.",
            registry=r, multiprocess_mode="livemin",
        )

        self.cache_hits = Counter(
            "latentserve_response_cache_hits",
            "Requests answered from the response cache.", ["rpc", "model"], registry=r,
        )
        self.cache_misses = Counter(
            "latentserve_response_cache_misses",
            "Cacheable requests not in the response cache (computed, then stored).",
            ["rpc", "model"], registry=r,
        )
        self.cache_skips = Counter(
            "latentserve_response_cache_skips",
            "Requests the response cache passed over, by reason (request_size: too large to "
            "key; response_size: too large to store).", ["rpc", "reason"], registry=r,
        )
        self.cache_evictions = Counter(
            "latentserve_response_cache_evictions",
            "Responses dropped from the cache, by reason (capacity: least recently used; "
            "unloaded: their version was retired).", ["model", "reason"], registry=r,
        )
        self.cache_bytes = Gauge(
            "latentserve_response_cache_bytes", "Bytes of responses held by the response cache.",
            registry=r,
        )
        self.cache_entries = Gauge(
            "latentserve_response_cache_entries", "Responses held by the response cache.",
            registry=r,
        )

    def rpc_series(self, rpc: str, model: str, code: str) -> tuple[Any, Any, Any]:
        """The (requests, latency, items) series of one RPC outcome, looked up once per label
        set (a `labels()` call costs more than the observation itself)."""
        key = (rpc, model, code)
        series = self._rpc_series.get(key)
        if series is None:
            series = self._rpc_series[key] = (
                self.requests.labels(rpc=rpc, model=model, code=code),
                self.latency.labels(rpc=rpc, model=model),
                self.items.labels(rpc=rpc),
            )
        return series

    def serve_http(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP in a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http_server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop the /metrics HTTP server if one runs."""
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None


def serve_multiprocess_http(host: str, port: int, directory: str) -> tuple[int, Any]:
    """Serve /metrics summed over the worker processes writing to `directory`.

    Returns (bound port, HTTP server); stop it with `.shutdown()` and `.server_close()`.
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port), server
