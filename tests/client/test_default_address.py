"""Where the SDK and the CLI go without an address: LATENTSERVE_ADDRESS, else 127.0.0.1 on
LATENTSERVE_PORT (the port `latentserve serve` takes), else 127.0.0.1:50051 — both alike."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from latentserve.cli import app
from latentserve.client import Client
from latentserve.client.transport import DEFAULT_ADDRESS, default_address
from tests.fixtures.service import closed_port


def test_the_sdk_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENTSERVE_ADDRESS", raising=False)
    monkeypatch.delenv("LATENTSERVE_PORT", raising=False)
    assert default_address() == DEFAULT_ADDRESS
    monkeypatch.setenv("LATENTSERVE_PORT", "6001")
    with Client() as client:
        assert client.address == "127.0.0.1:6001"
    monkeypatch.setenv("LATENTSERVE_ADDRESS", "models.example:7000")
    assert Client().address == "models.example:7000"
    assert Client("10.0.0.1:1").address == "10.0.0.1:1"


def test_the_cli_follows_latentserve_port() -> None:
    port = closed_port().rsplit(":", 1)[1]
    result = CliRunner().invoke(app, ["models", "--timeout-s", "3"],
                                env={"LATENTSERVE_PORT": port, "LATENTSERVE_ADDRESS": None})
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.stderr
    explicit = CliRunner().invoke(app, ["models", "--timeout-s", "3", "--address",
                                        f"127.0.0.1:{port}"], env={"LATENTSERVE_PORT": "1"})
    assert f"127.0.0.1:{port}" in explicit.stderr
