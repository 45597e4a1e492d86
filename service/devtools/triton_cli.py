"""`latentserve triton venv|up`: the local CPU Triton server (pip wheel) for development.

Example::

    latentserve triton venv                          # build .venv-triton once
    latentserve triton up --model-repository triton-repo   # foreground until Ctrl-C
    LATENTSERVE_BACKEND=triton LATENTSERVE_TRITON_FLAVOR=python latentserve serve
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal

import typer

from latentserve.service.devtools.triton_local import DEFAULT_VENV

app = typer.Typer(help="A local CPU Triton server (python backend) in its own venv.")

ModelControl = Literal["explicit", "none", "poll"]
VenvOption = Annotated[Path, typer.Option("--venv", help="The Triton venv folder.")]


@app.command("venv")
def venv_command(venv: VenvOption = DEFAULT_VENV) -> None:
    """Build the Triton venv (pinned nvidia-pytriton, numpy < 2, onnxruntime) if needed."""
    from latentserve.service.devtools.triton_local import TritonSetupError, ensure_triton_venv

    started = time.monotonic()
    try:
        path = ensure_triton_venv(venv)
    except TritonSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path} ready ({time.monotonic() - started:.1f} s)")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command("up")
def up_command(
    model_repository: Annotated[
        Path, typer.Option("--model-repository", help="Triton model repository folder.")
    ] = Path(".latentserve/triton-repo"),
    grpc_port: Annotated[int, typer.Option("--grpc-port")] = 8001,
    http_port: Annotated[int, typer.Option("--http-port")] = 8000,
    metrics_port: Annotated[int, typer.Option("--metrics-port")] = 8002,
    model_control: Annotated[
        Literal["explicit", "none", "poll"],
        typer.Option(
            "--model-control",
            help="explicit: the service loads models; none: load everything in the repository.",
        ),
    ] = "explicit",
    load_model: Annotated[
        list[str] | None, typer.Option("--load-model", help="Model to load at start (repeat).")
    ] = None,
    log_file: Annotated[Path, typer.Option("--log-file", help="Where the server log goes.")] = Path(
        ".latentserve/triton/tritonserver.log"
    ),
    venv: VenvOption = DEFAULT_VENV,
) -> None:
    """Run tritonserver on 127.0.0.1 in the foreground until SIGTERM or Ctrl-C (SIGINT).

    Either signal stops tritonserver before the command exits, also while it is starting, so
    no server is left behind. (A shell's background jobs ignore SIGINT: stop them with SIGTERM.)
    """
    from latentserve.service.devtools.triton_local import (
        TritonProcess,
        TritonSetupError,
        ensure_triton_venv,
    )

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server = TritonProcess(
            model_repository, venv=ensure_triton_venv(venv), grpc_port=grpc_port,
            http_port=http_port, metrics_port=metrics_port,
            model_control=model_control,
            load_models=load_model or (), log_path=log_file,
        )  # fmt: skip
    except TritonSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    try:
        server.start()
    except TritonSetupError as exc:
        server.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopping tritonserver ...")
        server.close()
        raise typer.Exit(0) from None
    typer.echo(
        f"tritonserver pid {server.pid} READY: grpc {server.grpc_url}, http {server.http_url}, "
        f"metrics {server.metrics_url}\nmodels: {server.model_repository}\nlog: {server.log_path}"
    )
    code = 0
    try:
        code = server.wait()
        typer.echo(
            f"tritonserver exited with code {code}; log tail:\n{server.log_tail(2000)}", err=True
        )
    except KeyboardInterrupt:
        typer.echo("stopping tritonserver ...")
    finally:
        server.close()
    raise typer.Exit(code)
