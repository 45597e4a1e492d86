"""`latentserve directions …`: find latent directions for any bundle and write them into it.

    latentserve directions discover b/ --method sefa --k 4
    latentserve directions discover b/ --method pca --k 3 --names hue,size,tilt
    latentserve directions discover b/ --method supervised --labels labels.npz

A two-stage bundle's directions live in W (see `registry.discovery`).
    latentserve directions add b/ --name smile --vector boundary.npy

Every command prints one `error: …` line and exits 2 when the bundle or an option is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from latentserve.registry.cli.bundle import clean_errors, split_list

app = typer.Typer(help="Discover latent directions (SeFa, PCA, supervised) or add your own.",
                  no_args_is_help=True, add_completion=False)
Method = Literal["sefa", "pca", "supervised"]


@app.command("discover")
def discover_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder (directions are written "
                                               "into it).")],
    method: Annotated[Method, typer.Option("--method", help="sefa (eigenvectors of AᵀA of the "
                                           "first latent weight), pca (GANSpace) or "
                                           "supervised (InterFaceGAN, needs --labels).")],
    k: Annotated[int, typer.Option("--k", help="How many directions (sefa, pca).")] = 4,
    labels: Annotated[Path | None, typer.Option("--labels", help="Labelled latents or images "
                                                "(.npz/.csv): supervised directions, or the "
                                                "latents PCA sees.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="Names a,b,… for the found "
                                              "directions, in order.")] = None,
    weight: Annotated[str | None, typer.Option("--weight", help="sefa: the initializer "
                                               "holding A (default: the first weight acting "
                                               "on the latent).")] = None,
    layer: Annotated[str | None, typer.Option("--layer", help="pca: the decoder tensor to do "
                                              "PCA on (default: the first activation after "
                                              "the latent's first layer).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="pca: prior samples (a two-stage "
                                         "bundle: mapped samples w that PCA and SeFa's σ "
                                         "see).")] = 4096,
    replace: Annotated[bool, typer.Option("--replace", help="Replace directions of the same "
                                          "name.")] = False,
) -> None:
    """Find directions with one method and add them to the bundle."""
    from latentserve.registry.bundle.files import load_bundle
    from latentserve.registry.bundle.spec import BundleError
    from latentserve.registry.bundle.update import add_directions, record_metrics
    from latentserve.registry.quality import direction_fits, discovery
    from latentserve.registry.quality.label_data import read_labels
    from latentserve.registry.quality.onnx_generator import OnnxGenerator

    with clean_errors():
        bundle = load_bundle(bundle_dir)
        given = split_list(names) or None
        if method == "sefa":
            found = discovery.sefa(bundle, k, weight=weight, names=given, samples=samples)
        elif method == "pca" and labels is None:
            found = discovery.pca(bundle, k, layer=layer, samples=samples, names=given)
        else:
            if labels is None:
                raise BundleError("labels: --method supervised needs --labels FILE")
            data = read_labels(labels, bundle.spec)
            latents, what = data.latents, f"the latents of {labels.name}"
            if latents is None:
                if bundle.spec.encoder is None:
                    raise BundleError(f"labels: {labels} holds images but the bundle has no "
                                      "encoder; give latents instead")
                assert data.images is not None
                latents = OnnxGenerator(bundle).encode(data.images, data.condition)
                what = f"the encoded images of {labels.name}"
            if method == "pca":
                found = direction_fits.pca_of_latents(latents, k, names=given, what=what)
            else:
                found = direction_fits.supervised(latents, data.columns, names=given, what=what)
        add_directions(bundle_dir, [(d.spec(), d.vector, d.sigma) for d in found],
                       replace=replace)
        if method == "supervised":
            record_metrics(bundle_dir, {f"direction_fit_{d.name}": d.score for d in found},
                           notes={f"direction_fit_{d.name}": f"{d.score_name} of the linear "
                                  f"model whose normal is the {d.name} direction"
                                  for d in found})  # fmt: skip
    for d in found:
        typer.echo(f"{d.name}: {d.method}, σ {d.sigma:.4g}, {d.score_name} {d.score:.4g}")


@app.command("add")
def add_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
    name: Annotated[str, typer.Option("--name", help="Direction name.")],
    vector: Annotated[Path, typer.Option("--vector", help=".npy of shape [N] or [1, N] (e.g. "
                                         "an InterFaceGAN boundary); it is unit-normalised.")],
    unit: Annotated[str | None, typer.Option("--unit", help="What strength 1.0 means (default: "
                                             "1 σ of prior latents along d).")] = None,
    sigma: Annotated[float, typer.Option("--sigma", help="Latent distance of strength "
                                         "1.0.")] = 1.0,
    factor: Annotated[str | None, typer.Option("--factor", help="The factor it moves (names "
                                               "the measure `bundle evaluate` scores it "
                                               "on).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a direction of the same "
                                          "name.")] = False,
) -> None:
    """Add a direction you already have (method "user")."""
    import numpy as np

    from latentserve.registry.bundle.spec import BundleError, DirectionSpec
    from latentserve.registry.bundle.update import USER_UNIT, add_directions

    with clean_errors():
        try:
            array = np.load(vector, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"vector: {vector} is not a readable .npy array ({exc})") from None
        try:
            entry = DirectionSpec(name=name, method="user", unit=unit or USER_UNIT, factor=factor)
        except ValueError:
            raise BundleError(f"name: {name!r} may use only letters, digits, '_', '.' and "
                              "'-'") from None
        add_directions(bundle_dir, [(entry, array, sigma)], replace=replace)
    typer.echo(f"{name}: added to {bundle_dir}")
