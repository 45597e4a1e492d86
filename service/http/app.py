"""The HTTP port's ASGI application: routing, CORS, bearer tokens, limits, errors, metrics.

Routes (see README, and `/openapi.json` / `/docs` on a running server):

- `POST /latentserve.v1.GeneratorService/<Method>` and `POST /v1/<method>`: every RPC (`api`);
  `GET /v1/models` and `GET /v1/models/<name>` (ListModels, GetModel) for quick looks;
- `/v2/...`: the Open Inference Protocol's REST API (`latentserve.service.oip.rest`);
- `GET /openapi.json`, `GET /docs`: the OpenAPI document and its docs page.

Every request passes the same checks as a gRPC call: the bearer token (when the service has a
token file; health and docs are exempt like gRPC health), the concurrency bound (429 beyond
`max_concurrent_rpcs`), the body size bound (413, checked before the body is read); then
the servicer answers with its own metrics, logs, cache and batcher. Every failure is a JSON
error (`errors.HttpError`); anything unexpected is 500 with a request id, details in the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.rpc import code_pb2, status_pb2
from prometheus_client import Counter

from latentserve.core.errors import ResourceExhausted
from latentserve.service.auth import TokenFile
from latentserve.service.grpc_errors import request_id
from latentserve.service.http import api, wire
from latentserve.service.http.calls import CallContext, CallFailed
from latentserve.service.http.errors import HttpError
from latentserve.service.http.transcode import to_json
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.v1 import generator_pb2 as pb

log = get_logger(__name__)
Handler = Callable[[wire.Request, wire.Send], Awaitable[None]]
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/openapi.json", "/docs"})
"""Reachable without a bearer token (health probes and the API description)."""
UNTRACED_ROUTES = frozenset({"oip_live", "oip_ready", "oip_model_ready", "openapi", "docs"})
"""Routes that get no span when tracing is on (probes would drown the traces)."""
_CORS_ALLOW_HEADERS = (b"authorization, content-type, accept, connect-protocol-version, "
                       b"connect-timeout-ms, inference-header-content-length, x-user-agent")
_CORS_EXPOSE_HEADERS = (b"x-latentserve-model, x-latentserve-version, x-request-id, "
                        b"inference-header-content-length")


class HttpApi:
    """The ASGI app of the HTTP port."""

    def __init__(self, servicer: Any, metrics: ServiceMetrics, *, max_body_bytes: int,
                 max_concurrent: int, cors_origins: list[str], tokens: TokenFile | None,
                 tracer: Any = None) -> None:
        """`tracer`: an OpenTelemetry tracer (tracing on): one SERVER span per request,
        continuing the caller's `traceparent`, parent of the servicer's spans."""
        self.tracer = tracer
        self.servicer = servicer
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.cors_origins = frozenset(cors_origins)
        self.tokens = tokens
        self.active = 0
        self.routes: dict[str, tuple[str, Handler]] = {}
        self.prefixes: list[tuple[str, Callable[[wire.Request], tuple[str, Handler] | None]]] = []
        service = pb.DESCRIPTOR.services_by_name["GeneratorService"]
        for path, route in api.routes_for(servicer, service).items():
            self.add(path, route.method.name, self._rpc(route))
        self.add("/v1/models", "ListModels", self._list_models)
        self.prefixes.append(("/v1/models/", self._get_model_route))
        self.requests = Counter(
            "latentserve_http_requests", "HTTP requests, by route and HTTP status.",
            ["route", "status"], registry=metrics.registry)

    def add(self, path: str, label: str, handler: Handler) -> None:
        """Serve `path` with `handler` (`label` names it in metrics)."""
        self.routes[path] = (label, handler)

    def add_prefix(self, prefix: str,
                   match: Callable[[wire.Request], tuple[str, Handler] | None]) -> None:
        """Serve paths under `prefix` with whatever `match(request)` returns."""
        self.prefixes.append((prefix, match))

    # ------------------------------------------------------------------ ASGI entry
    async def __call__(self, scope: wire.Scope, receive: wire.Receive, send: wire.Send) -> None:
        if scope["type"] != "http":
            return
        request = wire.Request(scope, receive)
        rid = request_id()
        request.extra_headers.append((b"x-request-id", rid.encode()))
        sent: list[int] = []

        async def send_noting(message: wire.Message) -> None:
            if message["type"] == "http.response.start":
                sent.append(int(message["status"]))
            await send(message)

        label = "unmatched"
        try:
            self._cors(request)
            if request.method == "OPTIONS":
                await wire.send_bytes(send_noting, request, 204, b"", "text/plain")
                return
            found = self._match(request)
            if found is None:
                raise HttpError.invalid(f"no route {request.path}", "path", 404)
            label, handler = found
            if request.path not in PUBLIC_PATHS:
                self._authenticate(request)
            if self.tracer is None or label in UNTRACED_ROUTES:
                await self._bounded(handler, request, send_noting)
            else:
                await self._traced(label, handler, request, send_noting, sent)
        except ConnectionAbortedError:
            return
        except HttpError as error:
            if not sent:
                await wire.send_error(send_noting, request, error)
        except Exception as exc:
            log.exception("internal error", error_type=type(exc).__name__, error=str(exc),
                          path=request.path[:128], request_id=rid)
            if not sent:
                status = status_pb2.Status(code=code_pb2.INTERNAL,
                                           message=f"internal error (request id {rid}); see "
                                           "server logs")
                await wire.send_error(send_noting, request, HttpError(status))
        finally:
            self.requests.labels(route=label, status=str(sent[0] if sent else 499)).inc()

    async def _bounded(self, handler: Handler, request: wire.Request, send: wire.Send) -> None:
        if self.active >= self.max_concurrent:
            raise HttpError.of(ResourceExhausted(
                f"the server handles at most {self.max_concurrent} requests at once; retry"))
        self.active += 1
        try:
            await handler(request, send)
        finally:
            self.active -= 1

    async def _traced(self, label: str, handler: Handler, request: wire.Request,
                      send: wire.Send, sent: list[int]) -> None:
        """Run `handler` inside a SERVER span named for the route."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(request.headers)
        with self.tracer.start_as_current_span(
                f"{request.method} {label}", context=parent, kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": request.method, "http.route": label,
                            "url.path": request.path[:256]}) as span:
            try:
                await self._bounded(handler, request, send)
            except HttpError as error:
                span.set_attribute("http.response.status_code", error.http_status)
                raise
            if sent:
                span.set_attribute("http.response.status_code", sent[0])

    def _match(self, request: wire.Request) -> tuple[str, Handler] | None:
        found = self.routes.get(request.path)
        if found is not None:
            return found
        for prefix, match in self.prefixes:
            if request.path.startswith(prefix):
                return match(request)
        return None

    # ------------------------------------------------------------------ checks
    def _cors(self, request: wire.Request) -> None:
        origin = request.header("origin")
        if not origin or not self.cors_origins:
            return
        if "*" in self.cors_origins:
            allowed = b"*"
        elif origin in self.cors_origins:
            allowed = origin.encode("latin-1")
        else:
            return
        request.extra_headers += [
            (b"access-control-allow-origin", allowed),
            (b"access-control-expose-headers", _CORS_EXPOSE_HEADERS),
            (b"vary", b"origin"),
        ]
        if request.method == "OPTIONS":
            request.extra_headers += [
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", _CORS_ALLOW_HEADERS),
                (b"access-control-max-age", b"600"),
            ]

    def _authenticate(self, request: wire.Request) -> None:
        if self.tokens is None:
            return
        value = request.header("authorization")
        reason = None
        if not value:
            reason = "missing"
        elif "," in value or not value.startswith("Bearer "):
            reason = "malformed"
        elif not self.tokens.accepts(value[len("Bearer "):].strip().encode("latin-1")):
            reason = "wrong"
        if reason is not None:
            self.metrics.auth_failures.labels(reason=reason).inc()
            log.warning("authentication failed", reason=reason, path=request.path[:128])
            raise HttpError(status_pb2.Status(code=code_pb2.UNAUTHENTICATED,
                                              message="missing or wrong bearer token"))

    # ------------------------------------------------------------------ handlers
    def _rpc(self, route: api.Route) -> Handler:
        async def handler(request: wire.Request, send: wire.Send) -> None:
            await api.handle(route, request, send, self.max_body_bytes)

        return handler

    async def _list_models(self, request: wire.Request, send: wire.Send) -> None:
        if request.method != "GET":
            raise HttpError.invalid("/v1/models takes GET", "method", 405)
        await self._unary(request, send, self.servicer.ListModels, pb.ListModelsRequest())

    def _get_model_route(self, request: wire.Request) -> tuple[str, Handler] | None:
        name = request.path[len("/v1/models/"):]
        if not name or "/" in name:
            return None

        async def handler(request: wire.Request, send: wire.Send) -> None:
            if request.method != "GET":
                raise HttpError.invalid("/v1/models/<name> takes GET", "method", 405)
            ref = pb.ModelRef(name=name)
            if "version" in request.query:
                text = request.query["version"]
                if not text.isdigit() or len(text) > 18:
                    raise HttpError.invalid("version must be a positive integer", "version")
                ref.version = int(text)
            elif "alias" in request.query:
                ref.alias = request.query["alias"]
            await self._unary(request, send, self.servicer.GetModel,
                              pb.GetModelRequest(model=ref))

        return "GetModel", handler

    async def _unary(self, request: wire.Request, send: wire.Send, call: Any,
                     message: Any) -> None:
        try:
            reply = await call(message, CallContext(api.timeout_s(request)))
        except CallFailed as failed:
            raise HttpError(failed.status) from None
        await wire.send_bytes(send, request, 200, to_json(reply), "application/json")
