"""Service settings: every knob of `latentserve serve`, read from `LATENTSERVE_*` env vars.

Example::

    LATENTSERVE_PORT=6000 LATENTSERVE_BACKEND=triton latentserve serve

The same names (lower-case, dashes for underscores) are the CLI options of `latentserve serve`,
and the deploy/ manifests set them as env vars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from latentserve.registry.settings import (
    DEFAULT_STATE_DIR,
    RegistrySettings,
    default_registry_uri,
)

__all__ = ["DEFAULT_STATE_DIR", "HEALTH_SERVICE_NAME", "Settings", "default_registry_uri"]


class Settings(RegistrySettings):
    """All service settings (the registry's first); env prefix `LATENTSERVE_`."""

    model_config = SettingsConfigDict(env_prefix="LATENTSERVE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free port).")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus /metrics HTTP port (0 picks a free port)."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics on metrics_port.")
    http_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="HTTP port beside gRPC (JSON for every RPC, the Open Inference Protocol's "
        "REST API under /v2, /openapi.json and /docs; same servicer, limits, tokens and TLS). "
        "Unset: no HTTP port; 0 picks a free port. `make run` and the deploy manifests use 8000.",
    )
    http_cors_origins: str = Field(
        "",
        description="Comma-separated browser origins allowed to call the HTTP port (CORS), e.g. "
        "http://localhost:5173; * allows any origin. Empty: no CORS headers (same-origin only).",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Serving processes sharing port (SO_REUSEPORT). 1: one process, no parent. "
        "N>1: a parent starts N workers (each loads its own models), serves one /metrics for "
        "all, forwards SIGTERM so each drains, restarts a worker that dies after it was ready "
        "and exits non-zero if one fails before it ever was.",
    )
    default_model: str = Field(
        "sprites-vae", description="Model served when a request leaves ModelRef.name empty."
    )
    default_alias: str = Field(
        "production", description="Alias used when a request names neither version nor alias."
    )
    backend: Literal["embedded", "triton"] = Field(
        "embedded", description="Numeric backend: in-process ONNX Runtime or a Triton server."
    )
    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC address (host:port).")
    triton_model_control: Literal["explicit", "none"] = Field(
        "explicit",
        description="explicit: the service loads/unloads <name>__v<version> on Triton itself; "
        "none: models are preloaded, the service only checks readiness.",
    )
    triton_flavor: Literal["onnxruntime", "python"] = Field(
        "onnxruntime",
        description="Triton model flavour loaded in explicit mode: onnxruntime (NGC image, GPU) "
        "or python (onnxruntime inside the python backend; the pip-installed CPU server).",
    )
    triton_load_timeout_s: float = Field(
        120.0, gt=0, description="How long loading one model on Triton may take before UNAVAILABLE."
    )
    triton_max_queue_delay_us: int = Field(
        100,
        ge=0,
        description="Triton dynamic batching: how long a request may wait for others to join "
        "its batch (max_queue_delay_microseconds of the models the service loads in explicit "
        "mode).",
    )
    triton_max_inflight: int = Field(
        4,
        ge=1,
        description="Batches the service keeps in flight to Triton per model component: the "
        "service merges concurrent requests into batches, and several in flight keep Triton's "
        "dynamic batcher and model instances busy.",
    )
    triton_lease_ttl_s: float = Field(
        60.0,
        gt=0,
        description="explicit model control: how long a replica's lease on a Triton model "
        "(a registry tag on its version, renewed every registry_poll_s) outlives the replica's "
        "last renewal. A replica unloads a version only when no other replica's lease is live; "
        "keep it several times registry_poll_s.",
    )
    replica_id: str = Field(
        "",
        description="This replica's name in Triton model leases (empty: <hostname>-<pid>; "
        "with workers > 1 each worker appends -w<n>, a replica of its own).",
    )
    triton_shared_memory: bool = Field(
        False, description="Use Triton system shared memory for outputs (same host only)."
    )
    max_loaded_versions: int = Field(
        4, ge=1, description="Model versions kept loaded at once (LRU beyond that)."
    )
    max_items: int = Field(
        1024, ge=1, description="Most items (latents/images) one request may produce or send."
    )
    max_frames: int = Field(4096, ge=2, description="Most frames one interpolation path may have.")
    max_message_bytes: int = Field(
        64 * 1024 * 1024,
        ge=4 * 1024 * 1024,
        description="Largest gRPC message accepted or sent, in bytes (both directions).",
    )
    default_deadline_s: float = Field(
        30.0, gt=0, description="Deadline applied to requests that arrive without one."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="Event loop of the server process: uvloop (less CPU per request), asyncio "
        "(the standard loop), or auto (uvloop when installed, else asyncio).",
    )
    max_concurrent_rpcs: int = Field(
        512, ge=1, description="RPCs handled at once; beyond that gRPC answers RESOURCE_EXHAUSTED."
    )
    max_unauthenticated_streams: int = Field(
        32,
        ge=1,
        description="Streams of the services that need no token (auth_exempt_services: health "
        "Watch, reflection) open at once; beyond that RESOURCE_EXHAUSTED. Counted apart from "
        "max_concurrent_rpcs, so idle streams never lock out the API; health Check (unary) is "
        "never limited.",
    )
    unknown_name_ttl_s: float = Field(
        5.0,
        ge=0,
        description="How long an unknown model, alias or version name is answered NOT_FOUND "
        "from memory instead of asking the registry again (a registry change seen by the alias "
        "watcher forgets them at once). 0: off.",
    )
    warmup_memory_bytes: int = Field(
        2 * 1024 * 1024 * 1024,
        ge=0,
        description="Most memory a version's warm-up may need, estimated from its ONNX graphs "
        "(weights plus the largest activations of one full batch) before loading; a bundle "
        "over it is refused (UNAVAILABLE naming the bundle) instead of loaded. 0: no limit.",
    )
    max_queue_items: int = Field(
        8192,
        ge=1,
        description="Rows waiting in one model's batch queue before RESOURCE_EXHAUSTED.",
    )
    batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Opt-in extra wait for a batch to fill. 0: adaptive only (an idle backend "
        "runs a lone request at once; batches form while it is busy).",
    )
    batch_busy_hold_ms: float = Field(
        2.0,
        ge=0,
        description="With several batches in flight (Triton): while one runs, queued rows wait "
        "up to this long (at most half a typical backend call) for more to join before taking "
        "another slot; a half-full batch or the end of a call dispatches at once. The first "
        "slot never waits. 0: every free slot takes the queue at once.",
    )
    triton_inflight_tuning: bool = Field(
        True,
        description="Narrow the batches in flight to Triton (1 … triton_max_inflight) from "
        "Triton's own statistics: fewer while requests queue inside Triton (the service merges "
        "them into larger batches instead), more while Triton waits for work.",
    )
    embedded_max_inflight: int = Field(
        1,
        ge=1,
        description="Batches ONNX Runtime runs at once per model component with the embedded "
        "backend (each uses intra_op_threads threads).",
    )
    embedded_memory_arena: bool = Field(
        False,
        description="Let ONNX Runtime keep a CPU memory arena per session (embedded backend). "
        "Off: activations go back to the allocator after each batch (measured: 147 MB less RSS "
        "for the three shipped models, no CPU cost at n=1 or n=64).",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per session (0: one per core)."
    )
    intra_op_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's intra-op threads busy-wait for work between calls "
        "(shaves ~0.2 ms off a call on dedicated cores, but burns CPU the gRPC event loop "
        "needs when cores are shared).",
    )
    response_cache_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Exact response cache: bytes of responses kept in memory (least recently "
        "used dropped first) to answer repeated Sample, Interpolate, Edit, Decode and Encode "
        "requests without recomputing them. Keyed by the serving version, so a moved alias "
        "never gets the old version's results. 0: off.",
    )
    response_cache_max_key_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Largest request (serialized bytes) the response cache looks up; larger "
        "ones (big Decode or Encode inputs) skip it rather than hash them.",
    )
    grace_period_s: float = Field(
        10.0, ge=0, description="On SIGTERM: how long in-flight requests may finish before exit."
    )
    registry_poll_s: float = Field(
        10.0, gt=0, description="How often served aliases are re-resolved in the registry."
    )
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    access_log: bool = Field(
        True, description="Log every RPC at INFO (off: successes at DEBUG; metrics count all)."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console: human-readable lines; json: one JSON object per line."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM server certificate; TLS needs it and tls_key_file (one without "
        "the other is refused at start)."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key for tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set (with TLS), clients must present a "
        "certificate it signed (mutual TLS)."
    )
    auth_token_file: Path | None = Field(
        None, description="File of accepted bearer tokens, one per line (several during a "
        "rotation; re-read when it changes). Every RPC outside auth_exempt_services must send "
        "`authorization: Bearer <token>`. An empty file is refused at start."
    )
    auth_exempt_services: str = Field(
        "grpc.health.v1.Health,grpc.reflection.v1alpha.ServerReflection,"
        "grpc.reflection.v1.ServerReflection",
        description="Comma-separated gRPC services reachable without a token when "
        "auth_token_file is set (empty: none).",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=0,
        description="Failed authentications one peer address may make per minute (a sliding "
        "minute); beyond that its calls answer UNAUTHENTICATED without checking the token, "
        "until its rate drops. 0: no limit.",
    )
    version_pin_aliases: str = Field(
        "",
        description="Comma-separated aliases (e.g. production,staging): when set, a request "
        "may pin only a version one of them points at (FAILED_PRECONDITION otherwise). "
        "Empty: any registered version may be pinned.",
    )

    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry: OTLP/gRPC collector address (e.g. http://otel-collector:4317) "
        "to export traces to: one span per RPC with validation, backend call, queue wait and "
        "batch run children; the trace context is forwarded to Triton. Unset: tracing off. "
        "The standard OTEL_EXPORTER_OTLP_* variables (headers, certificates) apply too.",
    )
    otlp_timeout_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Longest an OTLP export (and the flush at shutdown) waits on the collector: "
        "a dead collector never holds a shutdown past the grace period.",
    )
    otel_service_name: str = Field(
        "latentserve", description="OpenTelemetry service.name of the exported traces."
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded when tracing is on (a request that carries "
        "a traceparent follows its caller's sampling decision).",
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            given = "tls_cert_file" if self.tls_key_file is None else "tls_key_file"
            raise ValueError(f"{given} is set without its pair (tls_cert_file needs "
                             "tls_key_file and the other way round); refusing to serve "
                             "plaintext by accident")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and "
                             "tls_key_file")
        return self

    def exempt_services(self) -> list[str]:
        """auth_exempt_services as a list."""
        return [s.strip() for s in self.auth_exempt_services.split(",") if s.strip()]

    @model_validator(mode="after")
    def _http_port_shared(self) -> Settings:
        if self.workers > 1 and self.http_port == 0:
            raise ValueError("http_port 0 with workers > 1 would give each worker a port of its "
                             "own; set a fixed http_port (the workers share it, SO_REUSEPORT)")
        return self

    def cors_origins(self) -> list[str]:
        """http_cors_origins as a list."""
        return [s.strip() for s in self.http_cors_origins.split(",") if s.strip()]

    def pin_aliases(self) -> list[str]:
        """version_pin_aliases as a list (empty: pins unrestricted)."""
        return [s.strip() for s in self.version_pin_aliases.split(",") if s.strip()]

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, not {value!r}")
        return level


HEALTH_SERVICE_NAME = "latentserve.v1.GeneratorService"
"""The grpc.health.v1 service name of the API; "" is the overall status; each model name too."""


SHOWN_DEFAULTS = {
    "state_dir": "`.latentserve/` in a checkout, else `~/.local/share/latentserve`",
    "registry_uri": "sqlite registry under `<state_dir>/registry/`",
    "cache_dir": "`<state_dir>/cache`",
}
"""README defaults of the settings whose default depends on where latentserve is installed."""


def settings_markdown_table() -> str:
    """The README's configuration table, generated from the Settings fields."""
    rows = ["| env var | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=False)
        if name in SHOWN_DEFAULTS:
            shown = SHOWN_DEFAULTS[name]
        elif default is None:
            shown = "unset"
        else:
            shown = f"`{default}`"
        meaning = (field.description or "").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| `LATENTSERVE_{name.upper()}` | {shown} | {meaning} |")
    return "\n".join(rows)
