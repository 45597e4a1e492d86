"""`latentserve serve`: run the gRPC service with every Settings field as an option.

`latentserve serve --help` lists one option per Settings field; each option's env var is
`LATENTSERVE_<NAME>`, and an option given on the command line wins over the env var. The
`latentserve` root (`latentserve.cli`) mounts this command.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any

import typer

from latentserve.service.settings import SHOWN_DEFAULTS, Settings


def _option_type(annotation: Any) -> Any:
    """The CLI type for a Settings field annotation (Optional[...] unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(inner[0])
    return annotation


def settings_parameters() -> list[inspect.Parameter]:
    """One `--name` option per Settings field; None means "not given" (env or default wins)."""
    params = []
    for name, field in Settings.model_fields.items():
        kind = _option_type(field.annotation)
        default = SHOWN_DEFAULTS.get(name) or field.get_default(call_default_factory=True)
        help_text = f"{field.description} (env LATENTSERVE_{name.upper()}; default {default})"
        option = typer.Option(
            f"--{name.replace('_', '-')}", help=help_text, show_default=False
        )
        params.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[kind | None, option],
        ))
    return params


def serve(**given: Any) -> None:
    """Run the gRPC service until SIGTERM/SIGINT (then drain and exit 0); with workers > 1
    as that many processes on one port under a parent (latentserve.service.worker_pool)."""
    from pydantic import ValidationError

    from latentserve.service.auth import TokenFileError
    from latentserve.service.event_loop import run as run_loop
    from latentserve.service.logs import configure_logging
    from latentserve.service.server import LatentServer
    from latentserve.service.server import serve as run_server
    from latentserve.service.startup_errors import StartupError, settings_error_line

    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        typer.echo(f"error: {settings_error_line(exc)}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)

    def announce(server: LatentServer) -> None:
        loaded = ", ".join(f"{n} v{v}" for n, v in server.manager.loaded_versions())
        address = f"{settings.host}:{server.port}"
        default = server.manager.loaded_bundle(settings.default_model)
        labels = " --labels 0" if default is not None and default.spec.condition else ""
        typer.echo(
            f"\nlatentserve is serving {loaded} on {address} "
            f"(metrics: http://{settings.host}:{server.metrics_port}/metrics)\n"
            f"Try:  .venv/bin/latentserve sample --address {address} --model "
            f"{settings.default_model} --n 16 --seed 0{labels} --out grid.png\n"
            + (f"HTTP: http://{settings.host}:{server.http_port} (API page: /docs, OIP: /v2)\n"
               if server.http_port else ""),
            err=True,
        )

    if settings.workers > 1:
        from latentserve.service.worker_pool import WorkerPool

        def announce_pool(port: int, metrics_port: int) -> None:
            address = f"{settings.host}:{port}"
            metrics = f"http://{settings.host}:{metrics_port}/metrics" if metrics_port else "off"
            typer.echo(
                f"\nlatentserve is serving {settings.default_model} on {address} with "
                f"{settings.workers} workers (metrics: {metrics})\n"
                f"Try:  .venv/bin/latentserve sample --address {address} --model "
                f"{settings.default_model} --n 16 --seed 0 --out grid.png\n",
                err=True,
            )

        try:
            code = run_loop(WorkerPool(settings).run(on_ready=announce_pool),
                            settings.event_loop)
        except (StartupError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if code:
            raise typer.Exit(code)
        return

    try:
        run_loop(run_server(settings, on_ready=announce), settings.event_loop)
    except (TokenFileError, StartupError, OSError) as exc:  # one line, never a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


serve.__signature__ = inspect.Signature(settings_parameters())  # type: ignore[attr-defined]

# Plain (click) help, not Rich panels: with one option per setting, Rich's table cuts long
# option names at 80 columns; click's list wraps the help text and keeps every name whole.
app = typer.Typer(
    help="Run the gRPC service.", no_args_is_help=True, add_completion=False,
    rich_markup_mode=None,
)
app.command("serve")(serve)
