"""The HTTP port behind the same bearer tokens and TLS as gRPC, and OIP gRPC behind the tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from latentserve.inference import grpc_predict_v2_pb2 as oip
from latentserve.service.devtools.background import BackgroundServer
from tests.attack.test_auth import pki  # noqa: F401  (fixture)
from tests.fixtures.service import metric_value, service_settings

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def secured(registry_uri: str, tmp_path_factory: pytest.TempPathFactory,
            pki: dict[str, Path]) -> Iterator[BackgroundServer]:  # noqa: F811
    root = tmp_path_factory.mktemp("secured")
    tokens = root / "tokens"
    tokens.write_text(f"# rotation\nold-token\n{TOKEN}\n")
    settings = service_settings(registry_uri, root / "cache", http_port=0,
                                auth_token_file=tokens, tls_cert_file=pki["server.pem"],
                                tls_key_file=pki["server.key"])
    with BackgroundServer(settings) as bg:
        yield bg


@pytest.fixture(scope="module")
def https(secured: BackgroundServer, pki: dict[str, Path]) -> Iterator[httpx.Client]:  # noqa: F811
    assert secured.server is not None
    url = f"https://127.0.0.1:{secured.server.http_port}"
    with httpx.Client(base_url=url, verify=str(pki["ca.pem"]), timeout=60) as client:
        yield client


def test_tokens_guard_every_route_but_health_and_docs(https: httpx.Client,
                                                      secured: BackgroundServer) -> None:
    assert https.get("/v2/health/live").status_code == 200
    assert https.get("/openapi.json").status_code == 200
    before = metric_value(secured, "latentserve_auth_failures_total", reason="missing")
    refused = https.post("/v1/sample", json={"n": 1})
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert metric_value(secured, "latentserve_auth_failures_total", reason="missing") == before + 1
    wrong = https.get("/v2/models/tiny", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    good = https.post("/v1/sample", json={"model": {"name": "tiny"}, "n": 1},
                      headers={"authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200, good.text
    assert https.get("/v2/models/tiny/ready",
                     headers={"authorization": "Bearer old-token"}).status_code == 200


def test_plain_http_is_not_served_on_a_tls_port(secured: BackgroundServer) -> None:
    assert secured.server is not None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{secured.server.http_port}/v2/health/live", timeout=10)


def test_oip_grpc_needs_the_token(secured: BackgroundServer,
                                  pki: dict[str, Path]) -> None:  # noqa: F811
    credentials = grpc.ssl_channel_credentials(pki["ca.pem"].read_bytes())
    with grpc.secure_channel(secured.address, credentials) as channel:
        ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelReady",
            request_serializer=oip.ModelReadyRequest.SerializeToString,
            response_deserializer=oip.ModelReadyResponse.FromString)
        with pytest.raises(grpc.RpcError) as refused:
            ready(oip.ModelReadyRequest(name="tiny"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = ready(oip.ModelReadyRequest(name="tiny"), timeout=30,
                       metadata=[("authorization", f"Bearer {TOKEN}")])
        assert answer.ready
