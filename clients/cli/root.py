"""The root command group: the table of sub-commands and the lazy loading behind it.

Example::

    from latentserve.cli import app
    app(["models", "--address", "127.0.0.1:50051"])
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Annotated, Any

import typer
import typer.core
import typer.main

Command = Any
"""A command object of typer's click layer (typer ≥ 0.29 vendors its own click)."""


@dataclass(frozen=True)
class Mount:
    """One top-level name of the command: where its commands live and what they need.

    `sources` are `module:attribute` Typer apps whose commands are merged into one group, or,
    with `pick`, the one command of that name taken from the first source.
    """

    summary: str
    sources: tuple[str, ...]
    extra: str | None
    pick: str | None = None


def _client(name: str, summary: str) -> Mount:
    return Mount(summary, ("latentserve.cli.client_commands:app",), None, pick=name)


MOUNTS: dict[str, Mount] = {
    "serve": Mount("Run the gRPC service (every LATENTSERVE_* setting is an option).",
                   ("latentserve.service.cli:app",), "server", pick="serve"),
    "models": _client("models", "List the generators a running service serves."),
    "info": _client("info", "Describe one generator version: dims, directions, metrics."),
    "sample": _client("sample", "Sample a grid of images and write it as a PNG."),
    "interpolate": _client("interpolate", "Interpolate between seeds; write a strip PNG."),
    "edit": _client("edit", "Sweep seeds along a direction; write a grid PNG."),
    "mix": Mount("Style mixing of a W+ generator (row seeds × column seeds); write a grid PNG.",
                 ("latentserve.cli.mix_command:app",), None, pick="mix"),
    "encode": _client("encode", "Encode images into latents (models with an encoder)."),
    "decode": _client("decode", "Decode latents (.npy) into images."),
    "project": Mount("Find the latents of your own pictures (any model), with a progress bar.",
                     ("latentserve.cli.project_command:app",), None, pick="project"),
    "explore": Mount("Browse a served generator in a web page (seeds, directions, paths).",
                     ("latentserve.explore.cli:app",), "ui", pick="explore"),
    "registry": Mount("Register, list, download, export, promote and roll back generators.",
                      ("latentserve.registry.cli.registry:app", "latentserve.promotion.cli:app"),
                      "server"),
    "bundle": Mount("Build a bundle from your ONNX decoder (+ encoder); check and evaluate it.",
                    ("latentserve.registry.cli.bundle:app",), "server"),
    "directions": Mount("Discover latent directions of a bundle (SeFa, PCA, supervised) or add "
                        "your own.", ("latentserve.registry.cli.directions:app",), "server"),
    "triton": Mount("A local CPU Triton server (python backend) in its own venv.",
                    ("latentserve.service.devtools.triton_cli:app",), None),
    "train": Mount("Train a shipped generator (CPU, fixed seed) and write its bundle.",
                   ("latentserve.generators.cli:app",), "server,train"),
}


SEPARATE: dict[str, tuple[str, str]] = {
    "latentserve.generators": ("latentserve-generators", "./generators"),
}
"""`latentserve.*` packages that ship in a distribution of their own (beside an extra):
package → (distribution, its folder in a checkout)."""


def _separate(module: str) -> str | None:
    """The `SEPARATE` package `module` belongs to, if any."""
    return next((p for p in SEPARATE if module == p or module.startswith(p + ".")), None)


def _typer_app(source: str) -> typer.Typer:
    module, _, attribute = source.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    assert isinstance(found, typer.Typer), source
    return found


def _missing_extra(name: str, mount: Mount, missing: str) -> Command:
    """A stand-in command that says which extra to install, whatever arguments it gets."""
    package = _separate(missing)
    distribution, folder = SEPARATE[package] if package else ("", "")
    brings = f" and the {distribution} distribution" if distribution else ""
    hint = (f"`latentserve {name}` needs the [{mount.extra}] extra{brings} (module {missing!r} "
            f"is not installed): pip install 'latentserve[{mount.extra}]' (in a checkout: "
            f"pip install '.[{mount.extra}]'{' ' + folder if folder else ''})")
    stand_in = typer.Typer(add_completion=False)

    @stand_in.command(name, help=f"{mount.summary} (needs [{mount.extra}])",
                      add_help_option=False,
                      context_settings={"ignore_unknown_options": True,
                                        "allow_extra_args": True})
    def explain() -> None:
        typer.echo(f"error: {hint}", err=True)
        raise typer.Exit(1)

    return typer.main.get_command(stand_in)


def load(name: str, mount: Mount) -> Command:
    """Import a mount's modules and build its command (or the missing-extra stand-in)."""
    try:
        apps = [_typer_app(source) for source in mount.sources]
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing.split(".")[0] == "latentserve" and _separate(missing) is None:
            raise  # our own module is missing: a packaging bug, not a missing extra
        return _missing_extra(name, mount, missing)
    if mount.pick is not None:
        group = typer.main.get_group(apps[0])
        command = group.get_command(typer.Context(group), mount.pick)
        assert command is not None, (name, mount.pick)
        return command
    merged = typer.Typer(name=name, help=mount.summary, no_args_is_help=True,
                         add_completion=False)
    for part in apps:
        merged.registered_commands.extend(part.registered_commands)
        merged.registered_groups.extend(part.registered_groups)
    return typer.main.get_group(merged)


class LazyGroup(typer.core.TyperGroup):
    """The root group: sub-commands imported on first use, listed in help from `MOUNTS`."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(MOUNTS)

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        mount = MOUNTS.get(cmd_name)
        return None if mount is None else load(cmd_name, mount)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the sub-commands from the table, without importing any of them."""
        rows = [(name, mount.summary + (f" [needs {mount.extra}]" if mount.extra else ""))
                for name, mount in MOUNTS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version() -> str:
    try:
        return importlib.metadata.version("latentserve")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"latentserve {_version()}")
        raise typer.Exit()


app = typer.Typer(
    cls=LazyGroup,
    name="latentserve",
    help="Serve latent-space generators over gRPC: sample, interpolate, edit.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version,
        help="Print the installed latentserve version and exit.")] = False,
) -> None:
    """Serve latent-space generators over gRPC: sample, interpolate, edit."""


def main() -> None:
    """Console-script entry point."""
    app(prog_name="latentserve")
