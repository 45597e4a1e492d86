"""Attack regressions, auth/TLS (issue 15 item 9): several tokens compared in constant time and
re-read on rotation, empty token file and half-configured TLS refused at start, mutual TLS,
failures logged without the token and counted, a configurable exempt surface."""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pydantic
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from latentserve.service import auth
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import metric_value, service_settings

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _replace(path: Path, text: str) -> None:
    """Write a new token file the way a secret mount rotates: a new file moved into place."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text("# two tokens during a rotation\nold-token\n\nnew-token\n")
    return path


@pytest.fixture
def auth_server(registry_uri: str, tmp_path: Path,
                token_file: Path) -> Iterator[BackgroundServer]:
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file)
    with BackgroundServer(settings) as bg:
        yield bg


def _list(address: str, token: str | None) -> grpc.StatusCode:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.GeneratorServiceStub(channel).ListModels(
                pb.ListModelsRequest(), timeout=30, metadata=metadata)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_tokens_rotate_without_restart(auth_server: BackgroundServer, token_file: Path) -> None:
    address = auth_server.address
    assert _list(address, "old-token") == grpc.StatusCode.OK
    assert _list(address, "new-token") == grpc.StatusCode.OK
    _replace(token_file, "new-token\n")  # rotation done: the old token is withdrawn
    assert _list(address, "old-token") == UNAUTHENTICATED
    assert _list(address, "new-token") == grpc.StatusCode.OK
    _replace(token_file, "\n")  # a broken update keeps the last good tokens
    assert _list(address, "new-token") == grpc.StatusCode.OK
    assert _list(address, "") == UNAUTHENTICATED


def test_failed_auth_is_logged_without_the_token_and_counted(
        auth_server: BackgroundServer) -> None:
    logged = io.StringIO()
    previous = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=logged))
    try:
        assert _list(auth_server.address, "guessed-SECRET-value") == UNAUTHENTICATED
        assert _list(auth_server.address, None) == UNAUTHENTICATED
        assert _list(auth_server.address, "") == UNAUTHENTICATED
    finally:
        structlog.configure(logger_factory=previous)
    text = logged.getvalue()
    assert text.count("authentication failed") == 3
    assert "guessed-SECRET-value" not in text
    assert metric_value(auth_server, "latentserve_auth_failures_total") == 3
    assert metric_value(auth_server, "latentserve_auth_failures_total", reason="missing") == 1


def test_health_and_reflection_are_exempt_by_default(auth_server: BackgroundServer) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert _reflect(channel) == grpc.StatusCode.OK


def _reflect(channel: grpc.Channel) -> grpc.StatusCode:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    try:
        for _ in stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30):
            pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_exempt_surface_is_configurable(registry_uri: str, tmp_path: Path,
                                        token_file: Path) -> None:
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=token_file,
                                auth_exempt_services="grpc.health.v1.Health")
    with BackgroundServer(settings) as bg, grpc.insecure_channel(bg.address) as channel:
        assert _reflect(channel) == UNAUTHENTICATED
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)


@pytest.mark.parametrize("content", ["", "\n  \n", "# only a comment\n"])
def test_empty_token_file_is_refused_at_start(registry_uri: str, tmp_path: Path,
                                              content: str) -> None:
    empty = tmp_path / "tokens"
    empty.write_text(content)
    settings = service_settings(registry_uri, tmp_path / "cache", auth_token_file=empty)
    with pytest.raises(auth.TokenFileError, match="holds no token"):
        BackgroundServer(settings, wait_ready=False).start()


def test_tokens_are_compared_in_constant_time(token_file: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tokens = auth.TokenFile(token_file)
    assert tokens.accepts(b"old-token") and tokens.accepts(b"new-token")
    assert not tokens.accepts(b"old-toke")
    assert len(compared) == 6  # every token, every time: no early exit


# ------------------------------------------------------------------ TLS
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, Any] | None,
          *, ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = (name, key) if issuer is None else (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]), issuer[1])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test-ca", ca_key, None, ca=True)
    files: dict[str, bytes] = {"ca.pem": _pem(ca)}
    for who in ("server", "client"):
        key = _key()
        files[f"{who}.pem"] = _pem(_cert(who, key, ("test-ca", ca_key)))
        files[f"{who}.key"] = _pem(key)
    paths = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        paths[name] = root / name
    return paths


@pytest.mark.parametrize("given", ["tls_cert_file", "tls_key_file"])
def test_half_configured_tls_is_refused(registry_uri: str, tmp_path: Path,
                                        pki: dict[str, Path], given: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="without its pair"):
        service_settings(registry_uri, tmp_path, **{given: pki["server.pem"]})


def test_client_ca_needs_tls(registry_uri: str, tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(pydantic.ValidationError, match="mutual TLS"):
        service_settings(registry_uri, tmp_path, tls_client_ca_file=pki["ca.pem"])


def test_mutual_tls_requires_a_client_certificate(registry_uri: str, tmp_path: Path,
                                                  pki: dict[str, Path]) -> None:
    settings = service_settings(registry_uri, tmp_path / "cache",
                                tls_cert_file=pki["server.pem"], tls_key_file=pki["server.key"],
                                tls_client_ca_file=pki["ca.pem"])
    ca = pki["ca.pem"].read_bytes()
    with BackgroundServer(settings) as bg:
        with_cert = grpc.ssl_channel_credentials(ca, pki["client.key"].read_bytes(),
                                                 pki["client.pem"].read_bytes())
        with grpc.secure_channel(bg.address, with_cert) as channel:
            models = pb_grpc.GeneratorServiceStub(channel).ListModels(pb.ListModelsRequest(),
                                                                      timeout=30)
            assert "tiny" in [m.name for m in models.models]
        with grpc.secure_channel(bg.address, grpc.ssl_channel_credentials(ca)) as channel:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.GeneratorServiceStub(channel).ListModels(pb.ListModelsRequest(),
                                                                 timeout=30)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
