"""`latentserve bundle …`: build a bundle from ONNX files, check it, evaluate it.

    latentserve bundle create --decoder dec.onnx --latent-dim 16 --output-range 0,1 --out b/
    latentserve bundle create --mapping mapping.onnx --decoder synthesis.onnx --output-range 0,1 \
        --out my-gan/                          # a two-stage generator: edits in W
    latentserve bundle check b/
    latentserve bundle evaluate b/ --measures mypkg.measures:measure

Every command prints one `error: …` line and exits 2 when the bundle or an option is wrong.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from latentserve.registry.cli.registry import error_line
from latentserve.registry.training.command import fit_encoder_command

app = typer.Typer(help="Build generator bundles from ONNX files, check and evaluate them.",
                  no_args_is_help=True, add_completion=False)
app.command("fit-encoder")(fit_encoder_command)
FAILED = 2
"""Exit status of a failed command (bad bundle, bad option)."""


@contextmanager
def clean_errors() -> Iterator[None]:
    """A LatentServeError becomes one `error: …` line on stderr and exit status 2."""
    from latentserve.core.errors import LatentServeError

    try:
        yield
    except LatentServeError as exc:
        error_line(exc.message)
        raise typer.Exit(FAILED) from None
    except OSError as exc:  # an unwritable --out, a vanished file: one line, no traceback
        error_line(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        raise typer.Exit(FAILED) from None


def split_list(text: str | None) -> list[str]:
    """`a,b,c` → ["a", "b", "c"] (empty entries dropped)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _pair(text: str, option: str) -> tuple[float, float]:
    from latentserve.registry.bundle.spec import BundleError

    parts = split_list(text)
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise BundleError(f"{option}: expected two numbers lo,hi, got {text!r}") from None
    return lo, hi


def _shape(text: str | None) -> tuple[int, int, int] | None:
    from latentserve.registry.bundle.spec import BundleError

    if text is None:
        return None
    try:
        c, h, w = (int(p) for p in split_list(text))
    except ValueError:
        raise BundleError(f"output_shape: expected C,H,W, got {text!r}") from None
    return c, h, w


def _names(**given: str | None) -> dict[str, str]:
    return {role: name for role, name in given.items() if name}


@app.command("create")
def create_command(
    decoder: Annotated[Path, typer.Option("--decoder", help="Decoder ONNX file: latents "
                                          "[B, N] (W codes [B, w_dim] after a --mapping) "
                                          "(+ int64 labels [B]) → images [B, C, H, W].")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write (a bundle there is "
                                      "replaced).")],
    output_range: Annotated[str, typer.Option("--output-range", help="lo,hi of the decoder's "
                                              "outputs, e.g. 0,1 (sigmoid) or -1,1 (tanh).")],
    encoder: Annotated[Path | None, typer.Option("--encoder", help="Encoder ONNX file: images "
                                                 "→ mean [B, N] (W codes after a --mapping) "
                                                 "(+ log-variance).")] = None,
    mapping: Annotated[Path | None, typer.Option("--mapping", help="Mapping network ONNX file "
                                                 "of a two-stage (StyleGAN-like) generator: z "
                                                 "[B, N] → w [B, w_dim]; the bundle then edits "
                                                 "in W.")] = None,
    latent_dim: Annotated[int | None, typer.Option("--latent-dim", help="N, the size of z "
                                                   "(default: read from the mapping or the "
                                                   "decoder).")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Class label names a,b,c of a "
                                               "class-conditional decoder.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Bundle name (default: the --out "
                                             "folder's name).")] = None,
    output_shape: Annotated[str | None, typer.Option("--output-shape", help="C,H,W (default: "
                                                     "read from the decoder).")] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Largest batch the "
                                                "service sends.")] = 64,
    description: Annotated[str, typer.Option("--description")] = "",
    decoder_input: Annotated[str | None, typer.Option("--decoder-input", help="The decoder's "
                                                      "latent input, when ambiguous.")] = None,
    decoder_output: Annotated[str | None, typer.Option("--decoder-output", help="The decoder's "
                                                       "image output, when ambiguous.")] = None,
    condition_input: Annotated[str | None, typer.Option("--condition-input", help="The "
                                                        "decoder's label input.")] = None,
    mapping_input: Annotated[str | None, typer.Option("--mapping-input", help="The mapping's "
                                                      "latent input, when ambiguous.")] = None,
    mapping_output: Annotated[str | None, typer.Option("--mapping-output", help="The mapping's "
                                                       "W output, when ambiguous.")] = None,
    encoder_input: Annotated[str | None, typer.Option("--encoder-input")] = None,
    encoder_condition_input: Annotated[str | None, typer.Option(
        "--encoder-condition-input")] = None,
    encoder_mean: Annotated[str | None, typer.Option("--encoder-mean")] = None,
    encoder_logvar: Annotated[str | None, typer.Option("--encoder-logvar")] = None,
    prior_scale: Annotated[float, typer.Option("--prior-scale", help="The prior z = mean + "
                                               "scale·ε (an SD-VAE: 1/0.18215).")] = 1.0,
    prior_mean: Annotated[float, typer.Option("--prior-mean")] = 0.0,
    noise: Annotated[str, typer.Option("--noise", help="Default of a decoder's noise inputs: "
                                       "const, seeded or none.")] = "const",
    timeout: Annotated[float, typer.Option("--timeout", help="Stop with an error after this "
                                           "many seconds (the build runs the graphs; 0: no "
                                           "limit).")] = 600.0,
) -> None:
    """Build a bundle from ONNX files, check it as the service would, write a preview.png.

    Read from the graphs: a latent input [B, 4, 16, 16] sets latent_shape, a synthesis input
    ws [B, L, w_dim] after a mapping sets W+ layers, extra [B, C, H, W] inputs are noise."""
    from latentserve.registry.bundle.builder import BundleOptions, OnnxComponent, build_bundle
    from latentserve.registry.cli.limits import check_input_file, time_limit

    with clean_errors(), time_limit(timeout, "bundle create"):
        for what, given in (("decoder", decoder), ("mapping", mapping), ("encoder", encoder)):
            if given is not None:
                check_input_file(given, what)
        options = BundleOptions(
            name=name or out.name, output_range=_pair(output_range, "output_range"),
            latent_dim=latent_dim, output_shape=_shape(output_shape),
            labels=split_list(labels), max_batch_size=max_batch_size, description=description,
            prior_mean=prior_mean, prior_scale=prior_scale, noise_default=noise,
            provenance={"decoder_source": decoder.name}
            | ({"mapping_source": mapping.name} if mapping else {})
            | ({"encoder_source": encoder.name} if encoder else {}))
        components = {"decoder": OnnxComponent(decoder, _names(
            latent=decoder_input, output=decoder_output, condition=condition_input))}
        if mapping is not None:
            components["mapping"] = OnnxComponent(mapping, _names(latent=mapping_input,
                                                                  output=mapping_output))
        if encoder is not None:
            components["encoder"] = OnnxComponent(encoder, _names(
                image=encoder_input, condition=encoder_condition_input, mean=encoder_mean,
                logvar=encoder_logvar))
        bundle = build_bundle(out, options, components)
    spec = bundle.spec
    two_stage = f", W of {spec.editing_dim} (editing space)" if spec.mapping else ""
    if spec.num_ws:
        two_stage += f", W+ of {spec.num_ws} layers, {len(spec.decoder.noise_inputs)} noise inputs"
    if spec.latent_shape:
        two_stage += f", latent_shape {spec.latent_shape}"
    typer.echo(f"wrote {out}: {spec.name}, latent_dim {spec.latent_dim}{two_stage}, output "
               f"{spec.output.shape} in {list(spec.output.range)}"
               f"{', encoder' if spec.encoder else ''}"
               f"{f', {spec.num_classes} classes' if spec.condition else ''}; preview.png")


@app.command("check")
def check_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder.")],
) -> None:
    """Validate a bundle as the service does and run one batch through onnxruntime."""
    from latentserve.registry.bundle.check import check_bundle

    with clean_errors():
        report = check_bundle(bundle_dir)
    for line in report.facts:
        typer.echo(line)
    if not report.ok:
        error_line("; ".join(report.problems))
        raise typer.Exit(FAILED)
    typer.echo("ok")


def load_callable(target: str, option: str) -> Any:
    """`pkg.mod:function` imported (the current folder is on the path, as for `python -m`)."""
    from latentserve.registry.bundle.spec import BundleError

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise BundleError(f"{option}: expected module:function, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BundleError(f"{option}: cannot import {target!r} ({exc})") from None
    if not callable(found):
        raise BundleError(f"{option}: {target!r} is not callable")
    return found


@app.command("evaluate")
def evaluate_command(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder (metrics are written "
                                               "into its latentserve.json).")],
    measures: Annotated[str | None, typer.Option("--measures", help="module:function taking "
                                                 "images [n, C, H, W] and returning {name: "
                                                 "values [n]}.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Labelled latents or images "
                                                "(.npz/.csv); pixel measures are fitted to "
                                                "its label columns.")] = None,
    measure_of: Annotated[str | None, typer.Option("--measure-of", help="direction=measure,… "
                                                   "(default: a measure named like the "
                                                   "direction's factor or name).")] = None,
    match_measures: Annotated[bool, typer.Option("--match-measures", help="Score a direction "
                                                 "no measure is named for on the measure it "
                                                 "moves most (|ρ| ≥ 0.8), and record it as "
                                                 "its factor.")] = False,
    name_after_measure: Annotated[bool, typer.Option("--name-after-measure", help="Rename "
                                                     "each measured direction after its "
                                                     "measure (when that name is "
                                                     "free).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print, do not write.")] = False,
) -> None:
    """Measure latent quality (continuity, path length, norms, determinism; per-direction
    monotonicity and leakage with measures or labels) and record it in the bundle.

    A direction measured with a negative ρ is negated, so + increases its measure; the flip is
    printed and recorded (`direction.<name>.sign_flipped`)."""
    from latentserve.registry.bundle.files import load_bundle
    from latentserve.registry.bundle.spec import BundleError
    from latentserve.registry.quality.evaluate import (
        evaluate_bundle,
        label_measures,
        record_evaluation,
    )
    from latentserve.registry.quality.label_data import read_labels
    from latentserve.registry.quality.onnx_generator import OnnxGenerator

    with clean_errors():
        bundle = load_bundle(bundle_dir)
        if measures and labels:
            raise BundleError("measures: give --measures or --labels, not both")
        measure_fn = None
        if measures:
            measure_fn = load_callable(measures, "measures")
        elif labels:
            data = read_labels(labels, bundle.spec)
            images = data.images
            if images is None:
                assert data.latents is not None
                images = OnnxGenerator(bundle).decode(data.latents, data.condition)
            measure_fn = label_measures(images, data.columns)
        pairs = dict(p.split("=", 1) for p in split_list(measure_of) if "=" in p)
        if (match_measures or name_after_measure) and measure_fn is None:
            raise BundleError("measures: --match-measures and --name-after-measure need "
                              "--measures or --labels")
        result = evaluate_bundle(bundle, measures=measure_fn, measure_of=pairs,
                                 match_measures=match_measures)
        for key in sorted(result.metrics):
            typer.echo(f"{key} = {result.metrics[key]:.6g}")
        for name, measure in result.assigned.items():
            typer.echo(f"{name}: matched to measure {measure}")
        for name, measure in result.flips.items():
            typer.echo(f"{name}: measured ρ < 0; sign flipped so + increases {measure}"
                       f"{' (dry run: not written)' if dry_run else ''}")
        if not dry_run:
            renames = record_evaluation(bundle_dir, result,
                                        name_after_measure=name_after_measure)
            for old, new in renames.items():
                typer.echo(f"{old}: renamed {new} (its measure)")
            typer.echo(f"recorded {len(result.metrics)} metrics in {bundle_dir}")
