"""Client commands of the `latentserve` CLI: models, info, sample, interpolate, edit, encode,
decode.

The `latentserve` root (`latentserve.cli`) mounts them as top-level commands. They run on the
base install (typer and rich are base dependencies); writing PNG/GIF/APNG needs Pillow
(`[images]` extra), MP4 needs PyAV (`[video]`). `--json` prints one JSON document on stdout
instead of tables and messages. Grids follow the SDK's `GenerateResult.grid` rule: a path is
one row, a sweep has a row per seed and a column per strength, samples are about square.
Example::

    latentserve sample --model sprites-vae --n 16 --seed 0 --labels 0 --out grid.png
    latentserve edit --model sprites-vae --seeds 1,2 --labels 0,2 --direction scale \\
        --strengths=-2,-1,0,1,2 --conditional-on pos_y --out sweep.png
    latentserve interpolate --model shapes3d --seeds 1,2,3 --steps 8 --labels 2 --out walk.gif
    latentserve encode --model sprites-vae picture.png --labels 0 --out z.npy --json
    latentserve edit --model stylish-shapes --seeds 1,2 --direction pc0 --layers 0:4
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from latentserve.cli import client_output as output
from latentserve.client import (
    Client,
    DirectionInfo,
    GenerateResult,
    LatentServeClientError,
    ModelInfo,
    UnavailableError,
)
from latentserve.client.transport import DEFAULT_ADDRESS, default_address
from latentserve.core.layer_ops import parse_layer_range
from latentserve.core.names import did_you_mean, shown

app = typer.Typer(
    help="Talk to a running latentserve service.", no_args_is_help=True, add_completion=False
)
_out = Console()
_err = Console(stderr=True)

def _address(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """An --address left at its default follows the environment as the SDK does."""
    source = ctx.get_parameter_source(param.name or "address")
    return default_address() if source is not None and source.name == "DEFAULT" else value


Address = Annotated[
    str,
    typer.Option("--address", envvar="LATENTSERVE_ADDRESS", callback=_address,
                 help="Service host:port (default: $LATENTSERVE_ADDRESS, else "
                      "127.0.0.1:$LATENTSERVE_PORT, else 127.0.0.1:50051)."),
]
Timeout = Annotated[float, typer.Option("--timeout-s", min=0.001, help="Deadline per call (s).")]
Model = Annotated[
    str, typer.Option("--model", "-m", help="NAME, NAME@ALIAS or NAME:VERSION ('' = default).")
]
Out = Annotated[Path, typer.Option(
    "--out", "-o", help="File to write: .png (a grid), or .gif / .apng / .mp4 (an animation).")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Fps = Annotated[float, typer.Option("--fps", min=0.1, help="Frames per second of animations.")]
Scale = Annotated[int, typer.Option(
    "--scale", min=1, help="Enlarge each image (grid tile or animation frame) this many "
    "times; pixels stay exact.")]
Labels = Annotated[
    str | None, typer.Option("--labels", help="Class labels as numbers or class names, e.g. "
                             "0,1,2 or heart,square (one, or one per item).")
]
Psi = Annotated[float | None, typer.Option("--psi", help="Truncation ψ > 0 (default 1.0).")]
Cutoff = Annotated[int | None, typer.Option(
    "--truncation-cutoff", min=0, help="W+ models: apply --psi to the first K layers only.")]
Noise = Annotated[str | None, typer.Option(
    "--noise", help="Noise inputs: const, seeded or none (default: the model's).")]
NoiseSeed = Annotated[int | None, typer.Option(
    "--noise-seed", min=0, help="Seed of seeded noise (default: --seed for sample, else 0).")]
LayersOption = Annotated[str | None, typer.Option(
    "--layers", help="W+ models: layers START:END to edit (default: the direction's).")]


def parse_layers(text: str | None, option: str = "--layers") -> tuple[int, int] | None:
    """A W+ layer range 'START:END' ([start, end), e.g. 0:4) as a pair; None stays None."""
    if text is None:
        return None
    try:
        return parse_layer_range(text)
    except ValueError:
        raise typer.BadParameter(f"{option} must be START:END, e.g. 0:4, got {text!r}") from None


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{option} must be comma-separated integers, got {text!r}"
        ) from None


def _class_labels(client: Client, model: str, text: str | None) -> list[int] | None:
    """--labels as class numbers or names ("0,2" or "heart,square"): names are looked up in the
    model's class names (one GetModel call), with close matches for a mistyped one."""
    if not text:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if all(part.lstrip("-").isdigit() for part in parts):
        return [int(part) for part in parts]
    names = list(client.get_model(model).class_names)
    if not names:
        raise typer.BadParameter(f"--labels: {model or 'the default model'} has no classes, "
                                 f"got {shown(text)}")
    labels = []
    for part in parts:
        if part.lstrip("-").isdigit():
            labels.append(int(part))
        elif part in names:
            labels.append(names.index(part))
        else:
            raise typer.BadParameter(f"--labels: no class {shown(part)}"
                                     f"{did_you_mean(part, names)}")
    return labels


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
    except (LatentServeClientError, ValueError, TypeError, ImportError, OSError) as err:
        text = str(err) if isinstance(err, LatentServeClientError) else f"error: {err}"
        text = text.replace("class_labels", "--labels")  # the option, not the API field
        if isinstance(err, UnavailableError):
            text += (f" — is a latentserve service running at {address}? Start one with "
                     "`latentserve serve` (or `make run` in a checkout), or pass --address.")
        _err.print(" ".join(text.split()), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _save(result: GenerateResult, out: Path, what: str, as_json: bool,
          fps: float = 12.0, scale: int = 1) -> None:
    """Write `result` as a grid PNG or, by suffix, an animation; report it (text or JSON)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if output.is_animation(out):
        result.save_animation(out, fps=fps, scale=scale)
    else:
        grid = result.grid(padding=2)
        if scale > 1:
            from PIL import Image

            grid = grid.resize((grid.width * scale, grid.height * scale),
                               resample=Image.Resampling.NEAREST)
        grid.save(out)
    if as_json:
        output.print_json(output.generated_json(result, out))
        return
    _out.print(
        f"wrote {out} ({len(result)} {what}, {result.model})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("models")
def models(address: Address = DEFAULT_ADDRESS, timeout_s: Timeout = 30.0,
           as_json: Json = False) -> None:
    """List the generators the service serves, with versions and aliases."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        found = client.list_models()
    if as_json:
        output.print_json([output.plain(m) for m in found])
        return
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
        "latent_dim": str(info.latent_dim)
        + (f" (shape {list(info.latent_shape)})" if len(info.latent_shape) > 1 else ""),
        "prior": info.prior if (info.prior_mean, info.prior_scale) == (0.0, 1.0)
        else f"{info.prior}: {info.prior_mean:g} + {info.prior_scale:.6g}·ε",
        "editing_space": f"{info.editing_space.upper()} ({info.editing_dim}-d)"
        if len(info.editing_shape) == 1 else
        f"{info.editing_space.upper()} {list(info.editing_shape)}",
        "mapping": f"z ({info.latent_dim}) → w ({info.w_dim})" if info.has_mapping else "no",
        "output": f"{list(info.output_shape)} in [{info.output_min:g}, {info.output_max:g}]",
        "encoder": ("yes, conditional (needs --labels)" if info.encoder_conditional else "yes")
        if info.has_encoder else "no",
        "classes": ", ".join(info.class_names) or str(info.num_classes),
        "max_batch_size": str(info.max_batch_size),
    }
    if info.noise_inputs:
        rows["noise inputs"] = (f"{len(info.noise_inputs)} ("
                                + ", ".join(f"{n} {list(s)}" for n, s in info.noise_inputs)
                                + f"), default {info.noise_default}")
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
    as_json: Json = False,
) -> None:
    """Describe one generator version: dims, output, classes, directions, metrics."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        found = client.get_model(model)
    if as_json:
        output.print_json(output.plain(found))
        return
    _out.print(_info_table(found))
    directions = Table("direction", "method", "factor", "σ", "measured on images",
                       title="directions")
    for d in found.directions:
        factor = d.factor + (f" (layers {d.layers[0]}:{d.layers[1]})" if d.layers else "")
        directions.add_row(d.name, d.method, factor, f"{d.sigma:.4g}", _quality_cell(d))
    _out.print(directions)
    for d in found.directions:  # units are sentences: as lines, not a one-word-wide column
        _out.print(f"  {d.name}: strength 1 = {d.unit}", markup=False, highlight=False)
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
    cutoff: Cutoff = None,
    noise: Noise = None,
    noise_seed: NoiseSeed = None,
    labels: Labels = None,
    out: Out = Path("grid.png"),
    scale: Scale = 1,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
    as_json: Json = False,
) -> None:
    """Sample a grid of images from the prior and write it as one PNG."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        result = client.sample(
            model, n=n, seed=seed, truncation_psi=psi, truncation_cutoff=cutoff,
            class_labels=class_labels, output="uint8", noise=noise, noise_seed=noise_seed,
        )
        _save(result, out, "samples", as_json, scale=scale)


@app.command("interpolate")
def interpolate(
    model: Model = "",
    seeds: Annotated[str, typer.Option("--seeds", help="Keyframe seeds, e.g. 1,2,3.")] = "1,2",
    steps: Annotated[int, typer.Option("--steps", min=2, help="Frames per segment.")] = 8,
    method: Annotated[str | None, typer.Option(
        "--method", help="lerp | slerp | vp_lerp (default: slerp in Z, lerp in W).")] = None,
    psi: Psi = None,
    labels: Labels = None,
    out: Out = Path("strip.png"),
    fps: Fps = 12.0,
    scale: Scale = 1,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
    as_json: Json = False,
) -> None:
    """Interpolate between seeds: (seeds - 1) × (steps - 1) + 1 frames, written as one strip
    PNG (one row) or an animation (--out walk.gif / .apng / .mp4). The frames are streamed,
    with a progress bar on stderr for long paths."""
    keys = _ints(seeds, "--seeds")
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        chunks = client.stream_interpolate(
            model,
            seeds=keys,
            steps=steps,
            method=method,
            truncation_psi=psi,
            class_labels=class_labels,
            output="uint8",
        )
        total = (len(keys) - 1) * (steps - 1) + 1
        result = GenerateResult.join(output.with_progress(chunks, total, _err), columns=total)
        _save(result, out, "frames", as_json, fps, scale)


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
    layers: LayersOption = None,
    psi: Psi = None,
    cutoff: Cutoff = None,
    noise: Noise = None,
    noise_seed: NoiseSeed = None,
    labels: Labels = None,
    out: Out = Path("sweep.png"),
    scale: Scale = 1,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
    as_json: Json = False,
) -> None:
    """Sweep seeds along a direction; writes a grid (rows = seeds, columns = strengths).

    W+ models: --layers 0:4 edits only layers [0, 4) (coarse styles; GANSpace's layer-range
    edits); without it the direction's own range applies (`info MODEL` shows it)."""
    if not direction:
        raise typer.BadParameter("--direction is required (see `latentserve info MODEL`)")
    span = parse_layers(layers)
    keys = _ints(seeds, "--seeds")
    values = _floats(strengths, "--strengths")
    held = [name for item in conditional_on or [] for name in item.split(",") if name]
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        result = client.edit(
            model,
            seeds=keys,
            direction=direction,
            strengths=values,
            conditional_on=held,
            layers=span,
            truncation_psi=psi,
            truncation_cutoff=cutoff,
            class_labels=class_labels,
            output="uint8",
            noise=noise,
            noise_seed=noise_seed,
        )
        _save(result, out, "images", as_json, scale=scale)


@app.command("encode")
def encode(
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, ...) to encode.")],
    model: Model = "",
    labels: Labels = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Latents [n, N] as .npy.")]
    = Path("latents.npy"),
    resize: Annotated[bool, typer.Option(
        "--resize", help="Scale pictures of another size to the model's (refused otherwise).")]
    = False,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
    as_json: Json = False,
) -> None:
    """Encode images into posterior-mean latents (models with an encoder); writes .npy.

    Each file holds one picture of the model's output size (`info MODEL` shows it), read with
    Pillow and converted to its channels; other sizes are refused unless --resize."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        info = client.get_model(model)
        pixels = output.read_images(images, info.output_shape, resize=resize)
        result = client.encode(info.model, pixels, class_labels=class_labels)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, result.latents)
    if as_json:
        output.print_json({"out": str(out), "model": output.plain(result.model),
                           "latents": result.latents.tolist()})
        return
    _out.print(f"wrote {out} ({len(result)} latents of dim {result.latents.shape[1]}, "
               f"{result.model})", markup=False, highlight=False, soft_wrap=True)


@app.command("decode")
def decode(
    latents: Annotated[Path, typer.Argument(help="Latents [n, N] as .npy (e.g. from encode).")],
    model: Model = "",
    labels: Labels = None,
    out: Out = Path("decoded.png"),
    fps: Fps = 12.0,
    scale: Scale = 1,
    address: Address = DEFAULT_ADDRESS,
    timeout_s: Timeout = 30.0,
    as_json: Json = False,
) -> None:
    """Decode latents from a .npy file; writes a grid PNG or an animation."""
    with _reporting(address), Client(address, timeout_s=timeout_s) as client:
        class_labels = _class_labels(client, model, labels)
        z = np.load(latents, allow_pickle=False)
        result = client.decode(model, z, class_labels=class_labels, output="uint8")
        _save(result, out, "images", as_json, fps, scale)
