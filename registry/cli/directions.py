"""`latentserve directions …`: find latent directions for any bundle and write them into it.

    latentserve directions discover b/ --method sefa --k 4
    latentserve directions discover b/ --method pca --k 3 --names hue,size,tilt
    latentserve directions discover b/ --method supervised --labels labels.npz
    latentserve directions add b/ --name smile --vector boundary.npy
    latentserve directions dedupe b/ --max-cos 0.9          # print |cos|, drop duplicates
    latentserve directions flip b/ pc0
    latentserve directions rename b/ pc0 brightness
    latentserve directions remove b/ sefa3

A two-stage bundle's directions live in W (see `registry.discovery`); a W+ bundle's SeFa can
read the style weights of a layer range (`--layers 0:4`), which the directions then default to.

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
    layers: Annotated[str | None, typer.Option("--layers", help="sefa on a W+ bundle: the "
                                               "style layers start:end whose weights A "
                                               "stacks (the directions' default range).")] = None,
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
        _refuse_unused(method, labels=labels, weight=weight, layer=layer, layers=layers)
        bundle = load_bundle(bundle_dir)
        given = split_list(names) or None
        if method == "sefa":
            found = discovery.sefa(bundle, k, weight=weight, names=given, samples=samples,
                                   layers=layer_range(layers))
        elif method == "pca" and labels is None:
            found = discovery.pca(bundle, k, layer=layer, samples=samples, names=given,
                                  weight=weight)
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


_APPLIES = {"labels": ("pca", "supervised"), "weight": ("sefa", "pca"), "layer": ("pca",),
            "layers": ("sefa",)}
"""Which methods each option means something to (any other use is refused, not ignored)."""


def _refuse_unused(method: str, **given: object) -> None:
    from latentserve.registry.bundle.spec import BundleError

    for option, value in given.items():
        if value is not None and method not in _APPLIES[option]:
            raise BundleError(f"{option}: --{option} does not apply to --method {method} (it "
                              f"applies to {' and '.join(_APPLIES[option])})")


def layer_range(text: str | None) -> tuple[int, int] | None:
    """`start:end` → (start, end)."""
    from latentserve.core.layer_ops import parse_layer_range
    from latentserve.registry.bundle.spec import BundleError

    if text is None:
        return None
    try:
        return parse_layer_range(text)
    except ValueError:
        raise BundleError(f"layers: expected start:end, got {text!r}") from None


@app.command("flip")
def flip_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
    names: Annotated[list[str], typer.Argument(help="Directions to negate.")],
) -> None:
    """Negate directions (+ then moves the other way); measured quality follows the sign."""
    from latentserve.registry.quality.direction_edits import flip

    with clean_errors():
        flip(bundle_dir, names)
    typer.echo(f"flipped {', '.join(names)} in {bundle_dir}")


@app.command("rename")
def rename_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename a direction (with its σ, quality and metrics)."""
    from latentserve.registry.quality.direction_edits import rename

    with clean_errors():
        rename(bundle_dir, old, new)
    typer.echo(f"renamed {old} → {new} in {bundle_dir}")


@app.command("remove")
def remove_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
    names: Annotated[list[str], typer.Argument(help="Directions to remove.")],
) -> None:
    """Remove directions (and their metrics)."""
    from latentserve.registry.quality.direction_edits import remove

    with clean_errors():
        remove(bundle_dir, names)
    typer.echo(f"removed {', '.join(names)} from {bundle_dir}")


@app.command("dedupe")
def dedupe_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
    max_cos: Annotated[float, typer.Option("--max-cos", help="A direction whose |cos| with an "
                                           "earlier one is above this is a duplicate.")] = 0.9,
    orthogonalize: Annotated[bool, typer.Option("--orthogonalize", help="Keep duplicates, "
                                                "made orthogonal to the earlier directions "
                                                "(default: drop them).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print, do not change the "
                                          "bundle.")] = False,
) -> None:
    """Print the |cos| matrix of the directions; drop (or orthogonalise) the duplicates,
    keeping the earlier of each pair (bundle order)."""
    from latentserve.registry.quality.direction_edits import dedupe, format_matrix

    with clean_errors():
        report = dedupe(bundle_dir, max_cos, "orthogonalize" if orthogonalize else "drop",
                        dry_run=dry_run)
    for line in format_matrix(report.names, report.cosines):
        typer.echo(line)
    for name, (earlier, cos) in report.matched.items():
        action = "dropped" if name in report.dropped else "orthogonalised"
        typer.echo(f"{name}: |cos| {cos:.3f} with {earlier} > {max_cos:g}: "
                   f"{'would be ' if dry_run else ''}{action}")
    if not report.matched:
        typer.echo(f"no pair above |cos| {max_cos:g}; nothing to do")
