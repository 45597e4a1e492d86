"""`latentserve registry …`: put bundles into the MLflow registry, list them, fetch them.

The `latentserve` root mounts this group together with the promotion commands
(`latentserve.promotion.cli`: promote, rollback) under one `registry` name. Example::

    latentserve registry init                      # register the shipped generators (idempotent)
    latentserve registry register out/my-vae --name my-vae --alias staging
    latentserve registry list
    latentserve registry download my-vae --alias staging --out /tmp/bundles
    latentserve registry export-triton my-vae --alias staging --out triton-repo
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from latentserve.registry.triton.export import Flavor, InstanceKind

app = typer.Typer(
    help="Register generator bundles in the MLflow registry, list them and download them.",
    no_args_is_help=True,
    add_completion=False,
)

PRODUCTION = "production"
"""The serving alias `registry init` sets and promotion moves by default."""
_URI_HELP = "MLflow registry URI (default: $LATENTSERVE_REGISTRY_URI, else the local sqlite one)."


def serving_aliases() -> set[str]:
    """Aliases services serve: `production` and the service's default alias (env)."""
    return {PRODUCTION, os.environ.get("LATENTSERVE_DEFAULT_ALIAS", PRODUCTION)}


RegistryUriOption = Annotated[str | None, typer.Option("--registry-uri", help=_URI_HELP)]


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Print a LatentServeError as one line on stderr and exit 1 (no traceback)."""
    from latentserve.core.errors import LatentServeError

    quiet_registry_logs()
    try:
        yield
    except LatentServeError as exc:
        error_line(exc.message)
        raise typer.Exit(1) from None


def quiet_registry_logs() -> None:
    """Keep MLflow's and alembic's INFO lines out of command output."""
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def error_line(message: str) -> None:
    """Print one `error: …` line on stderr (no traceback)."""
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False,
                               soft_wrap=True, markup=True)


def registry_uri_or_default(registry_uri: str | None) -> str:
    """The given `--registry-uri`, else `LATENTSERVE_REGISTRY_URI`, else the local sqlite one."""
    from latentserve.registry.settings import RegistrySettings

    return registry_uri or RegistrySettings().registry_uri  # type: ignore[call-arg]  # env


@app.command("init")
def init_command(
    registry_uri: RegistryUriOption = None,
    zoo: Annotated[
        Path | None,
        typer.Option("--zoo", "--bundles-dir", help="Register the bundles in this folder's "
                     "subfolders [default: LATENTSERVE_ZOO_DIR, else the checkout's "
                     "generators/zoo]."),
    ] = None,
) -> None:
    """Register the shipped generators and point `production` at them where it is unset.

    Safe to run again: a bundle already registered (same content hash) is reused,
    and an existing `production` alias is never moved.
    """
    from latentserve.core.errors import NotFound
    from latentserve.registry.bundle.files import bundles_in, load_bundle
    from latentserve.registry.settings import ZooSettings
    from latentserve.registry.store.mlflow_store import RegistryClient

    with _clean_errors():
        uri = registry_uri_or_default(registry_uri)
        folder = zoo if zoo is not None else ZooSettings().zoo_dir
        if not folder.is_dir():
            raise typer.BadParameter(
                f"{folder} is not a folder; pass --zoo DIR (or set LATENTSERVE_ZOO_DIR) to the "
                "folder of bundles, e.g. generators/zoo of a latentserve checkout (the base "
                "install is the SDK and carries no zoo)", param_hint="--zoo")
        dirs = bundles_in(folder)
        console = Console()
        if not dirs:
            console.print(f"no bundles found in {folder}; nothing to register", soft_wrap=True,
                          highlight=False, markup=False)
            return
        client = RegistryClient(uri, create=True)
        table = Table("name", "version", "alias", "status", title=f"registry {uri}")
        changed = 0
        for bundle_dir in dirs:
            bundle = load_bundle(bundle_dir)
            name = bundle.spec.name
            existing = client.versions_with_hash(name, bundle.content_hash)
            version = existing[-1] if existing else client.register(bundle_dir, name)
            status = "already registered" if existing else "registered"
            try:
                current: int | None = client.resolve(name, PRODUCTION)
            except NotFound:
                current = None
            if current is None:
                client.set_alias(name, PRODUCTION, version)
                current = version
                status += f", {PRODUCTION} set"
            if not existing or status.endswith("set"):
                changed += 1
            alias = f"{PRODUCTION} → v{current}"
            table.add_row(name, str(version), alias, status)
        console.print(table)
        console.print("registry updated" if changed else "nothing changed: every bundle was "
                      f"already registered and has a {PRODUCTION} alias")


@app.command("register")
def register_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder (holds latentserve.json).")],
    name: Annotated[str | None, typer.Option("--name", help="Registered model name "
                                             "(default: the spec's name).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Point this alias at the "
                                              "version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Register a new version even if this "
                                        "exact bundle is already registered, and allow --alias "
                                        "to move a serving alias (skipping the promotion "
                                        "gates).")] = False,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Validate a bundle and register it as a new version (idempotent unless --force).

    --alias may not name a serving alias (production, or $LATENTSERVE_DEFAULT_ALIAS): moving
    one is what `latentserve registry promote` does after its gates pass. --force overrides
    this, with a warning.
    """
    from latentserve.registry.bundle.files import load_bundle
    from latentserve.registry.store.mlflow_store import RegistryClient

    if alias and alias in serving_aliases():
        if not force:
            error_line(f"--alias {alias} is a serving alias: moving it skips the promotion "
                       f"gates. Use `latentserve registry promote NAME --version V --alias "
                       f"{alias}`, or pass --force to move it anyway.")
            raise typer.Exit(1)
        Console(stderr=True).print(
            f"[yellow]warning:[/yellow] --force: moving serving alias {alias} without the "
            "promotion gates (`latentserve registry promote` runs them)", highlight=False)
    with _clean_errors():
        client = RegistryClient(registry_uri_or_default(registry_uri), create=True)
        bundle = load_bundle(bundle_dir)
        model = name or bundle.spec.name
        existing = [] if force else client.versions_with_hash(model, bundle.content_hash)
        version = client.register(bundle_dir, model, alias, force=force)
        what = "already registered as" if existing else "registered"
        suffix = f" ({alias} → v{version})" if alias else ""
        Console().print(f"{model}: {what} version {version}{suffix}", highlight=False)


@app.command("list")
def list_command(registry_uri: RegistryUriOption = None) -> None:
    """List registered generators with their versions and aliases."""
    from latentserve.registry.store.mlflow_store import RegistryClient

    with _clean_errors():
        uri = registry_uri_or_default(registry_uri)
        records = RegistryClient(uri).list_models()
        console = Console()
        if not records:
            console.print(f"no latentserve models in {uri}", highlight=False)
            return
        table = Table("name", "versions", "aliases", title=f"registry {uri}")
        for record in records:
            aliases = ", ".join(f"{a} → v{v}" for a, v in record.aliases.items()) or "-"
            table.add_row(record.name, ", ".join(map(str, record.versions)), aliases)
        console.print(table)


@app.command("download")
def download_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to download into "
                                      "(files go to OUT/NAME/VERSION/).")],
    version: Annotated[int | None, typer.Option("--version", help="Version to fetch.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Fetch the aliased version.")] = None,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Download one version's bundle and print where it is."""
    from latentserve.registry.store.mlflow_store import RegistryClient

    _check_one_of(version, alias)
    with _clean_errors():
        client = RegistryClient(registry_uri_or_default(registry_uri))
        resolved = version if version is not None else client.resolve(name, str(alias))
        path = client.download(name, resolved, out)
        typer.echo(str(path))


@app.command("export-triton")
def export_triton_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    out: Annotated[Path, typer.Option("--out", help="Triton model repository folder to write.")],
    version: Annotated[int | None, typer.Option("--version", help="Version to export.")] = None,
    alias: Annotated[str | None, typer.Option("--alias",
                                              help="Export the aliased version.")] = None,
    flavor: Annotated[Flavor, typer.Option(
        "--flavor", help="onnxruntime (NGC image, GPU) or python (onnxruntime in the python "
        "backend).")] = "onnxruntime",
    registry_uri: RegistryUriOption = None,
    instance_kind: Annotated[InstanceKind | None, typer.Option(
        "--instance-kind", help="Triton instance_group kind (default: KIND_GPU if onnxruntime, "
        "else KIND_CPU).")] = None,
) -> None:
    """Write NAME's version (or alias) into --out as `<name>__v<version>[__mapping|__encoder]`
    models."""
    from latentserve.registry.bundle.files import load_bundle
    from latentserve.registry.settings import RegistrySettings
    from latentserve.registry.store.mlflow_store import RegistryClient
    from latentserve.registry.triton.export import export_triton

    _check_one_of(version, alias)
    with _clean_errors():
        client = RegistryClient(registry_uri_or_default(registry_uri))
        resolved = version if version is not None else client.resolve(name, str(alias))
        client.check_version(name, resolved)
        cache_dir = RegistrySettings().cache_dir  # type: ignore[call-arg]  # env
        bundle = load_bundle(client.download(name, resolved, cache_dir))
        written = export_triton(bundle, resolved, out, flavor=flavor, instance_kind=instance_kind)
    for model in written:
        typer.echo(f"{out / model}")


def _check_one_of(version: int | None, alias: str | None) -> None:
    if (version is None) == (alias is None):
        raise typer.BadParameter("give exactly one of --version and --alias",
                                 param_hint="--version")
