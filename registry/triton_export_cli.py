"""`latentserve registry export-triton`: write a registered version as a Triton model repository.

Example::

    latentserve registry export-triton sprites-vae --alias production --flavor onnxruntime \\
        --out deploy/triton/models
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from latentserve.registry.triton_export import Flavor, InstanceKind

app = typer.Typer(help="Export registered bundle versions as Triton model repositories.")


@app.command("export-triton")
def export_triton_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    out: Annotated[Path, typer.Option("--out", help="Triton model repository folder to write.")],
    version: Annotated[int | None, typer.Option("--version", help="Version to export.")] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Export the aliased version.")
    ] = None,
    flavor: Annotated[
        Flavor,
        typer.Option(
            "--flavor",
            help="onnxruntime (NGC image, GPU) or python (onnxruntime in the python backend).",
        ),
    ] = "onnxruntime",
    registry_uri: Annotated[
        str | None,
        typer.Option(
            "--registry-uri", help="MLflow registry URI (default: LATENTSERVE_REGISTRY_URI)."
        ),
    ] = None,
    instance_kind: Annotated[
        InstanceKind | None,
        typer.Option(
            "--instance-kind",
            help="Triton instance_group kind (default: KIND_GPU if onnxruntime, else KIND_CPU).",
        ),
    ] = None,
) -> None:
    """Write NAME's version (or alias) into --out as `<name>__v<version>[__encoder]` models."""
    from latentserve.core.errors import LatentServeError
    from latentserve.registry.bundle import load_bundle
    from latentserve.registry.settings import RegistrySettings
    from latentserve.registry.store import RegistryClient
    from latentserve.registry.triton_export import export_triton

    if (version is None) == (alias is None):
        raise typer.BadParameter(
            "give exactly one of --version and --alias", param_hint="--version"
        )
    settings = RegistrySettings()  # type: ignore[call-arg]  # from LATENTSERVE_* env vars
    client = RegistryClient(registry_uri or settings.registry_uri)
    try:
        resolved = version if version is not None else client.resolve(name, cast(str, alias))
        client.check_version(name, resolved)
        bundle = load_bundle(client.download(name, resolved, settings.cache_dir))
        written = export_triton(bundle, resolved, out, flavor=flavor, instance_kind=instance_kind)
    except LatentServeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    for model in written:
        typer.echo(f"{out / model}")
