"""`latentserve registry …`: put bundles into the MLflow registry, list them, fetch them.

Example::

    latentserve registry init                      # register the shipped generators (idempotent)
    latentserve registry register out/my-vae --name my-vae --alias staging
    latentserve registry list
    latentserve registry download my-vae --alias staging --out /tmp/bundles
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Register generator bundles in the MLflow registry, list them and download them.",
    no_args_is_help=True,
    add_completion=False,
)

PRODUCTION = "production"
_URI_HELP = "MLflow registry URI (default: $LATENTSERVE_REGISTRY_URI, else the local sqlite one)."
RegistryUriOption = Annotated[str | None, typer.Option("--registry-uri", help=_URI_HELP)]


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Print a LatentServeError as one line on stderr and exit 1 (no traceback)."""
    from latentserve.service.errors import LatentServeError

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        yield
    except LatentServeError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc.message}", highlight=False,
                                   soft_wrap=True)
        raise typer.Exit(1) from None


def _uri(registry_uri: str | None) -> str:
    from latentserve.service.settings import Settings

    return registry_uri or Settings().registry_uri  # type: ignore[call-arg]  # env-sourced


@app.command("init")
def init_command(
    registry_uri: RegistryUriOption = None,
    bundles_dir: Annotated[
        Path | None,
        typer.Option("--bundles-dir", help="Register the bundles in this folder's subfolders "
                     "instead of the shipped ones."),
    ] = None,
) -> None:
    """Register the shipped generators and point `production` at them where it is unset.

    Safe to run again: a bundle already registered (same content hash) is reused,
    and an existing `production` alias is never moved.
    """
    from latentserve.registry.bundle import load_bundle, shipped_bundles
    from latentserve.registry.spec import SPEC_FILE
    from latentserve.registry.store import RegistryClient
    from latentserve.service.errors import NotFound

    with _clean_errors():
        uri = _uri(registry_uri)
        if bundles_dir is not None:
            if not bundles_dir.is_dir():
                raise typer.BadParameter(f"{bundles_dir} is not a folder",
                                         param_hint="--bundles-dir")
            dirs = sorted(d for d in bundles_dir.iterdir() if (d / SPEC_FILE).is_file())
        else:
            dirs = shipped_bundles()
        console = Console()
        if not dirs:
            console.print(f"no bundles found in {bundles_dir or 'the shipped zoo'}; "
                          "nothing to register")
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
                                        "exact bundle is already registered.")] = False,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Validate a bundle and register it as a new version (idempotent unless --force)."""
    from latentserve.registry.bundle import load_bundle
    from latentserve.registry.store import RegistryClient

    with _clean_errors():
        client = RegistryClient(_uri(registry_uri), create=True)
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
    from latentserve.registry.store import RegistryClient

    with _clean_errors():
        uri = _uri(registry_uri)
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
    from latentserve.registry.store import RegistryClient

    if (version is None) == (alias is None):
        raise typer.BadParameter("give exactly one of --version and --alias",
                                 param_hint="--version")
    with _clean_errors():
        client = RegistryClient(_uri(registry_uri))
        resolved = version if version is not None else client.resolve(name, str(alias))
        path = client.download(name, resolved, out)
        typer.echo(str(path))


# ---------------------------------------------------------------- promotion

_PROMOTE_EPILOG = (
    "Gates, in order, each recorded as version tags gate.<name> = pass|fail|skip (with .value, "
    "and .detail when it fails): bundle (schema, ONNX checker, spec/ONNX IO agreement), "
    "onnx_parity, quality.<metric> (vs the holder of the baseline alias, or absolute thresholds "
    "when it has none), smoke (Sample/Interpolate/Edit on the embedded backend) and latency (p50 "
    "of a batch decode vs the holder). On promotion the version records the alias's previous "
    "holder, which `latentserve registry rollback` restores.\n\n"
    "Exit codes: 0 promoted (or already the holder, or a dry run whose gates all pass); "
    "1 a gate failed, the alias did not move; 2 infrastructure or usage error (registry "
    "unreachable, unknown model or version, bad gates file), the alias did not move."
)


@app.command("promote", epilog=_PROMOTE_EPILOG)
def promote_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Option("--version", min=1, help="Version to promote.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move.")] = PRODUCTION,
    baseline_alias: Annotated[str | None, typer.Option(
        "--baseline-alias", help="Compare with this alias's holder (default: --alias).")] = None,
    gates: Annotated[Path | None, typer.Option(
        "--gates", help="Gates file, TOML (default: the packaged gates.toml).")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write a Markdown report here (also on failure).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Run the gates only: record no tags, move no alias.")] = False,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Run the promotion gates on a version and move the alias only if all pass."""
    from latentserve.registry import gates_report
    from latentserve.registry.gates import load_gates
    from latentserve.registry.promote import EXIT_ERROR, promote

    _quiet_registry_logs()
    console = Console()
    try:
        result = promote(_uri(registry_uri), name, version, alias, baseline_alias=baseline_alias,
                         gates=load_gates(gates), dry_run=dry_run,
                         on_gate=lambda g: console.print(gates_report.gate_line(g)))
    except Exception as exc:
        message = _error_text(exc)
        if report is not None:
            _write_report(report, gates_report.error_report(name, version, alias, message))
        raise typer.Exit(EXIT_ERROR) from None
    if result.gates:
        console.print(gates_report.gates_table(result))
    console.print(gates_report.summary(result), highlight=False)
    if report is not None:
        _write_report(report, gates_report.markdown_report(result))
        console.print(f"report written to {report}", highlight=False)
    raise typer.Exit(result.exit_code)


@app.command("rollback", epilog="Exit codes: 0 rolled back; 2 nothing recorded to roll back "
             "to, or an infrastructure or usage error.")
def rollback_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move back.")] = PRODUCTION,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Point the alias back at the version it held before its last promotion."""
    from latentserve.registry.promote import EXIT_ERROR, rollback

    _quiet_registry_logs()
    try:
        done = rollback(_uri(registry_uri), name, alias)
    except Exception as exc:
        _error_text(exc)
        raise typer.Exit(EXIT_ERROR) from None
    Console().print(f"{name}: {alias} → v{done.to_version} (was v{done.from_version})",
                    highlight=False)


def _error_text(exc: Exception) -> str:
    """Print an error as one line on stderr (no traceback) and return its text."""
    from latentserve.service.errors import LatentServeError

    message = exc.message if isinstance(exc, LatentServeError) else f"{type(exc).__name__}: {exc}"
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return message


def _quiet_registry_logs() -> None:
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _write_report(path: Path, text: str) -> None:
    from latentserve.registry.promote import EXIT_ERROR

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        Console(stderr=True).print(f"[red]error:[/red] cannot write report {path}: {exc}",
                                   highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from None
