"""`latentserve registry promote|rollback`: move a serving alias only after the quality gates.

The `latentserve` root mounts these commands in the `registry` group beside the registry's own
(init, register, list, download, export-triton). Example::

    latentserve registry promote sprites-vae --version 3 --alias production --report out.md
    latentserve registry rollback sprites-vae --alias production
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from latentserve.registry.cli.registry import (
    PRODUCTION,
    RegistryUriOption,
    error_line,
    quiet_registry_logs,
    registry_uri_or_default,
)

app = typer.Typer(
    help="Promote a registered version to an alias after quality gates, or roll it back.",
    no_args_is_help=True,
    add_completion=False,
)

_PROMOTE_EPILOG = (
    "Gates, in order, each recorded as version tags gate.<name> = pass|fail|skip (with .value, "
    "and .detail when it fails): bundle (schema, ONNX checker, spec/ONNX IO agreement), "
    "onnx_parity, quality.<metric> (vs the holder of the baseline alias, or absolute thresholds "
    "when it has none), directions.measured ([policy]), smoke (Sample/Interpolate/Edit on the "
    "embedded backend), latency (p50 of a batch decode vs the holder; without one, per output "
    "pixel), image_drift (the same seeds' pictures vs the holder's), diversity, and fid / "
    "precision / recall against [reference] images. --explain shows every rule's gates-file "
    "key and why it passed, failed or was skipped. On promotion the version records the alias's "
    "previous holder, which `latentserve registry rollback` restores.\n\n"
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
    explain: Annotated[bool, typer.Option(
        "--explain", help="For every rule: its key in the gates file and why it passed, failed "
        "or was skipped (and the [[metrics]] rules that matched nothing).")] = False,
    registry_uri: RegistryUriOption = None,
) -> None:
    """Run the promotion gates on a version and move the alias only if all pass.

    Each gate is printed once, as it is decided; the summary line follows.
    """
    from latentserve.promotion import report as gates_report
    from latentserve.promotion.gates import idle_rules, load_gates
    from latentserve.promotion.promote import EXIT_ERROR, promote

    quiet_registry_logs()
    console = Console()
    try:
        config = load_gates(gates)
        result = promote(registry_uri_or_default(registry_uri), name, version, alias,
                         baseline_alias=baseline_alias, gates=config, dry_run=dry_run,
                         on_gate=lambda g: console.print(gates_report.gate_line(
                             g, explain=explain), highlight=False, soft_wrap=True))
    except Exception as exc:
        message = _error_text(exc)
        if report is not None:
            _write_report(report, gates_report.error_report(name, version, alias, message))
        raise typer.Exit(EXIT_ERROR) from None
    if explain:
        for key in idle_rules(config.metrics, result.gates):
            console.print(gates_report.idle_rule_line(key), highlight=False, soft_wrap=True)
    console.print(gates_report.summary(result), highlight=False, markup=False)
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
    from latentserve.promotion.promote import EXIT_ERROR, rollback

    quiet_registry_logs()
    try:
        done = rollback(registry_uri_or_default(registry_uri), name, alias)
    except Exception as exc:
        _error_text(exc)
        raise typer.Exit(EXIT_ERROR) from None
    Console().print(f"{name}: {alias} → v{done.to_version} (was v{done.from_version})",
                    highlight=False)


def _error_text(exc: Exception) -> str:
    """Print an error as one line on stderr (no traceback) and return its text."""
    from latentserve.core.errors import LatentServeError

    message = exc.message if isinstance(exc, LatentServeError) else f"{type(exc).__name__}: {exc}"
    error_line(message)
    return message


def _write_report(path: Path, text: str) -> None:
    from latentserve.promotion.promote import EXIT_ERROR

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        error_line(f"cannot write report {path}: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
