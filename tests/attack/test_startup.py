"""Attack regressions, start-up (second pass, item 19): bad settings and impossible start-ups
end `latentserve serve` with one `error:` line naming the setting, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from latentserve.service.cli import app


@pytest.fixture(autouse=True)
def _keep_log_config() -> Iterator[None]:
    """`serve` configures structlog to print to the CliRunner's stream, closed afterwards;
    the session's servers must keep logging where they did."""
    previous = structlog.get_config()
    yield
    structlog.configure(**previous)


def _serve(monkeypatch: pytest.MonkeyPatch, registry_uri: str, tmp_path: Path,
           **env: str) -> tuple[int, str]:
    monkeypatch.setenv("LATENTSERVE_REGISTRY_URI", registry_uri)
    monkeypatch.setenv("LATENTSERVE_CACHE_DIR", str(tmp_path / "cache"))
    for name, value in env.items():
        monkeypatch.setenv(f"LATENTSERVE_{name.upper()}", value)
    result = CliRunner().invoke(app, ["--metrics-port", env.get("metrics_port", "0")])
    return result.exit_code, result.output


@pytest.mark.parametrize(("env", "expected"), [
    ({"workers": "0"}, "LATENTSERVE_WORKERS: Input should be greater than or equal to 1"),
    ({"log_level": "loud"}, "LATENTSERVE_LOG_LEVEL: log_level must be DEBUG"),
    ({"port": "http"}, "LATENTSERVE_PORT: Input should be a valid integer"),
    ({"tls_cert_file": "/nonexistent.pem"}, "tls_cert_file is set without its pair"),
    ({"tls_cert_file": "/nonexistent.pem", "tls_key_file": "/nonexistent.key"},
     "TLS files cannot be read"),
    ({"auth_token_file": "/nonexistent-tokens"}, "auth_token_file /nonexistent-tokens"),
    ({"host": "256.1.1.1"}, "cannot serve on 256.1.1.1"),
], ids=["workers", "log level", "port", "half TLS", "TLS files", "token file", "host"])
def test_bad_settings_end_in_one_line(monkeypatch: pytest.MonkeyPatch, registry_uri: str,
                                      tmp_path: Path, env: dict[str, str],
                                      expected: str) -> None:
    code, output = _serve(monkeypatch, registry_uri, tmp_path, **{"port": "0", **env})
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert expected in lines[0]
    assert "Traceback" not in output


def test_taken_metrics_port_is_one_line(monkeypatch: pytest.MonkeyPatch, registry_uri: str,
                                        tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, output = _serve(monkeypatch, registry_uri, tmp_path, port="0",
                              metrics_port=port)
    assert code == 2, output
    assert output.strip().startswith("error: cannot serve metrics") and "Traceback" not in output
