"""Client commands of the `latentserve` CLI: models, info, sample, interpolate, edit.

The `latentserve` root (`latentserve.cli`) mounts them as top-level commands. They run on the
base install (typer and rich are base dependencies); writing PNGs needs Pillow. Example::

    latentserve sample --model sprites-vae --n 16 --seed 0 --out grid.png
    latentserve edit --model sprites-vae --seeds 1,2 --direction scale \\
        --strengths=-2,-1,0,1,2 --conditional-on pos_x --out sweep.png
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .client import Client
from .errors import LatentServeClientError, UnavailableError
from .results import DirectionInfo, GenerateResult, ModelInfo
from .transport import DEFAULT_ADDRESS

app = typer.Typer(
    help="Talk to a running latentserve service.", no_args_is_help=True, add_completion=False
)
_out = Console()
_err = Console(stderr=True)

Address = Annotated[
    str,
    typer.Option("--address", envvar="LATENTSERVE_ADDRESS", help="Service host:port."),
]
Timeout = Annotated[float, typer.Option("--timeout-s", min=0.001, help="Deadline per call (s).")]
Model = Annotated[
    str, typer.Option("--model", "-m", help="NAME, NAME@ALIAS or NAME:VERSION ('' = default).")
]
Out = Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")]
Labels = Annotated[
    str | None, typer.Option("--labels", help="Class labels, e.g. 0,1,2 (one, or one per item).")
]
Psi = Annotated[float | None, typer.Option("--psi", help="Truncation ψ > 0 (default 1.0).")]


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{option} must be comma-separated integers, got {text!r}"
        ) from None


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{option} must be comma-separated numbers, got {text!r}"
        ) from None


@contextmanager
def _reporting(address: str) -> Iterator[None]:
    """Turn service, argument and missing-dependency errors into one line on stderr, exit 1."""
    try:
        yield
    except (LatentServeClientError, ValueError, TypeError, ImportError) as err:
        text = str(err) if isinstance(err, LatentServeClientError) else f"error: {err}"
        if isinstance(err, UnavailableError):
            text += (f" — is a latentserve service running at {address}? Start one with "
                     "`latentserve serve` (or `make run` in a checkout), or pass --address.")
        _err.print(" ".join(text.split()), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _save(result: GenerateResult, out: Path, ncols: int | None, what: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    result.grid(ncols, padding=2).save(out)
    _out.print(
        f"wrote {out} ({len(result)} {what}, {result.model})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("models")
def models(address: Address = DEFAULT_ADDRESS, timeout_s: Timeout = 30.0) -> None:
    """List the generators the service serves, with versions and aliases."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        found = client.list_models()
    table = Table("model", "versions", "aliases", "loaded")
    for m in found:
        aliases = ", ".join(f"{a}→{v}" for a, v in m.aliases.items())
        table.add_row(m.name, ", ".join(map(str, m.versions)), aliases, str(m.loaded_version))
    _out.print(table)


def _info_table(info: ModelInfo) -> Table:
    table = Table("field", "value", title=str(info.model), show_header=False)
    rows = {
        "description": info.description,
        "aliases": ", ".join(info.aliases),
        "latent_dim": str(info.latent_dim),
        "prior": info.prior,
        "output": f"{list(info.output_shape)} in [{info.output_min:g}, {info.output_max:g}]",
        "encoder": "yes" if info.has_encoder else "no",
        "classes": ", ".join(info.class_names) or str(info.num_classes),
        "max_batch_size": str(info.max_batch_size),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def _quality_cell(d: DirectionInfo) -> str:
    """'ink ρ 0.99/0.97 ✓' (within-seed/pooled Spearman, reliable?) or 'not measured'."""
    q = d.quality
    if q is None:
        return "not measured"
    verdict = "reliable" if q.reliable else "UNRELIABLE"
    return f"{q.measure} ρ {q.spearman_within:.2f}/{q.spearman_pooled:.2f} {verdict}"


@app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION.")],
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
) -> None:
    """Describe one generator version: dims, output, classes, directions, metrics."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        found = client.get_model(model)
    _out.print(_info_table(found))
    directions = Table("direction", "method", "factor", "σ", "measured on images", "unit",
                       title="directions")
    for d in found.directions:
        directions.add_row(d.name, d.method, d.factor, f"{d.sigma:.4g}", _quality_cell(d), d.unit)
    _out.print(directions)
    if found.metrics:
        metrics = Table("metric", "value", title="metrics")
        for key, value in found.metrics.items():
            metrics.add_row(key, f"{value:.6g}")
        _out.print(metrics)


@app.command("sample")
def sample(
    model: Model = "",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of samples.")] = 16,
    seed: Annotated[int, typer.Option(
        "--seed", min=0, help="Seed; item i is drawn from SeedSequence((seed, i)).")] = 0,
    psi: Psi = None,
    labels: Labels = None,
    out: Out = Path("grid.png"),
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
) -> None:
    """Sample a grid of images from the prior and write it as one PNG."""
    class_labels = _ints(labels, "--labels") if labels else None
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        result = client.sample(
            model, n=n, seed=seed, truncation_psi=psi, class_labels=class_labels, output="uint8"
        )
        _save(result, out, None, "samples")


@app.command("interpolate")
def interpolate(
    model: Model = "",
    seeds: Annotated[str, typer.Option("--seeds", help="Keyframe seeds, e.g. 1,2,3.")] = "1,2",
    steps: Annotated[int, typer.Option("--steps", min=2, help="Frames per segment.")] = 8,
    method: Annotated[str, typer.Option("--method", help="lerp | slerp | vp_lerp.")] = "slerp",
    psi: Psi = None,
    labels: Labels = None,
    out: Out = Path("strip.png"),
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
) -> None:
    """Interpolate between seeds and write the frames as one strip PNG."""
    keys = _ints(seeds, "--seeds")
    class_labels = _ints(labels, "--labels") if labels else None
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        result = client.interpolate(
            model,
            seeds=keys,
            steps=steps,
            method=method,
            truncation_psi=psi,
            class_labels=class_labels,
            output="uint8",
        )
        _save(result, out, len(result), "frames")


@app.command("edit")
def edit(
    model: Model = "",
    seeds: Annotated[str, typer.Option("--seeds", help="Base seeds, e.g. 1,2.")] = "1",
    direction: Annotated[str, typer.Option("--direction", help="Direction name.")] = "",
    strengths: Annotated[
        str, typer.Option("--strengths", help="Strengths, e.g. --strengths=-2,-1,0,1,2.")
    ] = "-2,-1,0,1,2",
    conditional_on: Annotated[
        list[str] | None,
        typer.Option("--conditional-on", help="Direction(s) to hold fixed (repeat or a,b)."),
    ] = None,
    psi: Psi = None,
    labels: Labels = None,
    out: Out = Path("sweep.png"),
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
) -> None:
    """Sweep seeds along a direction; writes a grid (rows = seeds, columns = strengths)."""
    if not direction:
        raise typer.BadParameter("--direction is required (see `latentserve info MODEL`)")
    keys = _ints(seeds, "--seeds")
    values = _floats(strengths, "--strengths")
    held = [name for item in conditional_on or [] for name in item.split(",") if name]
    class_labels = _ints(labels, "--labels") if labels else None
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        result = client.edit(
            model,
            seeds=keys,
            direction=direction,
            strengths=values,
            conditional_on=held,
            truncation_psi=psi,
            class_labels=class_labels,
            output="uint8",
        )
        _save(result, out, max(len(values), 1), "images")
