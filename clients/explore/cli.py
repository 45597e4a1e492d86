"""`latentserve explore`: serve the explorer page for a running latentserve service.

Example::

    latentserve explore --address 127.0.0.1:50051 --port 7860 --model sprites-vae@production
"""

from __future__ import annotations

from typing import Annotated

import typer

from latentserve.client import Client

from .app import build_app, launch  # imports gradio: without [ui] the root names the extra
from .render import Explorer

app = typer.Typer(add_completion=False, help="Browse a served generator in a web page.")


@app.command("explore")
def explore(
    address: Annotated[str, typer.Option(
        "--address", envvar="LATENTSERVE_ADDRESS", help="Service host:port.")] = "127.0.0.1:50051",
    host: Annotated[str, typer.Option("--host", help="Interface the page listens on.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", min=0, help="Page port (0 = the first free one from 7860).")] = 7860,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Model shown first (NAME@ALIAS or NAME:VERSION).")] = "",
    timeout_s: Annotated[float, typer.Option("--timeout-s", min=0.001,
                                             help="Deadline per call (s).")] = 30.0,
) -> None:
    """Open a web page to browse seeds, drag directions, interpolate and encode."""
    with Client(address, timeout_s=timeout_s) as client:
        demo = build_app(Explorer(client), default_model=model)
        typer.echo(f"latentserve explorer for {address} on http://{host}:{port}/ (Ctrl-C stops)")
        launch(demo, host=host, port=port or None)
