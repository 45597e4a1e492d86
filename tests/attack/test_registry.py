"""Attack regressions, registry side (issue 15 item 10): `register --alias` cannot move a
serving alias past the promotion gates without --force, and a service can refuse pins of
versions outside its served aliases (so no client can force-load an arbitrary version)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from latentserve.registry.bundle.files import Bundle
from latentserve.registry.cli import registry as cli
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.service import service_settings
from tests.fixtures.tiny import build_tiny_bundle


def _register(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, ["register", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_register_refuses_a_serving_alias(empty_registry_uri: str, tiny_bundle: Bundle,
                                          tmp_path: Path) -> None:
    uri = ("--registry-uri", empty_registry_uri)
    code, out = _register(str(tiny_bundle.root), "--alias", "production", *uri)
    assert code == 1 and "registry promote" in out and "--force" in out
    assert RegistryClient(empty_registry_uri).list_models() == []
    code, out = _register(str(tiny_bundle.root), "--alias", "staging", *uri)
    assert code == 0 and "staging → v1" in out
    code, out = _register(str(tiny_bundle.root), "--alias", "production", "--force", *uri)
    assert code == 0 and "warning" in out and "production → v2" in out


def test_register_refuses_the_configured_default_alias(empty_registry_uri: str,
                                                       tiny_bundle: Bundle,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSERVE_DEFAULT_ALIAS", "live")
    code, out = _register(str(tiny_bundle.root), "--alias", "live", "--registry-uri",
                          empty_registry_uri)
    assert code == 1 and "serving alias" in out


@pytest.fixture
def pinned_server(empty_registry_uri: str, tmp_path: Path) -> Iterator[BackgroundServer]:
    """Model "pin": v1 (production), v2 (staging), v3 (no alias); pins limited to those two."""
    bundle = build_tiny_bundle(tmp_path / "pin", name="pin")
    registry = RegistryClient(empty_registry_uri)
    for v in (1, 2, 3):
        assert registry.register(bundle.root, "pin", force=True) == v
    registry.set_alias("pin", "production", 1)
    registry.set_alias("pin", "staging", 2)
    settings = service_settings(empty_registry_uri, tmp_path / "cache", default_model="pin",
                                version_pin_aliases="production,staging")
    with BackgroundServer(settings) as bg:
        yield bg


def test_pins_outside_the_allow_list_are_refused_before_loading(
        pinned_server: BackgroundServer) -> None:
    assert pinned_server.server is not None
    with grpc.insecure_channel(pinned_server.address) as channel:
        stub = pb_grpc.GeneratorServiceStub(channel)
        for version in (1, 2):
            out = stub.Sample(pb.SampleRequest(n=1, model=pb.ModelRef(name="pin",
                                                                     version=version)),
                              timeout=30)
            assert out.model.version == version
        for version in (3, 99):
            with pytest.raises(grpc.RpcError) as info:
                stub.Sample(pb.SampleRequest(n=1, model=pb.ModelRef(name="pin",
                                                                   version=version)),
                            timeout=30)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "cannot be pinned" in (info.value.details() or "")
    assert ("pin", 3) not in pinned_server.server.manager.loaded_versions()
