"""The end-to-end run of a factor-aligned generator (`sprites-vae`, `shapes3d`): render
training pairs from the prior, train, fit the named directions, export to ONNX, measure the
exported bundle on its images, and write the bundle with each direction's measured quality.

A `FactorWorld` says what differs between generators (renderer, layout, decoder, measures).
Example::

    bundle = train_factor_generator(SPRITES_WORLD, Path("generators/zoo/sprites-vae"),
                                    FactorConfig(), seed=0)
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.bundle_parts import prepare_run, provenance
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.generators.factor_latent import CIRCULAR_PERIOD, FactorLatent
from latentserve.generators.factor_models import FactorEncoder
from latentserve.generators.factor_training import (
    FactorData,
    fit_factor_model,
    polish_decoder,
    set_posterior_spread,
)
from latentserve.generators.inference import float64_copy, run_batched, torch_threads
from latentserve.registry.bundle.files import Bundle, write_bundle
from latentserve.registry.bundle.preview import rgb_grid_png
from latentserve.registry.bundle.spec import (
    SCHEMA_VERSION,
    BundleSpec,
    CircularSpec,
    ConditionSpec,
    DecoderSpec,
    DirectionQualitySpec,
    EncoderSpec,
    OutputSpec,
)
from latentserve.registry.quality.direction_fits import Discovered, as_arrays, supervised
from latentserve.registry.quality.latent_metrics import (
    METRIC_NOTES,
    interpolation_metrics,
    recon_mse,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator
from latentserve.registry.quality.scene_eval import (
    ImageMeasures,
    SceneEvalSizes,
    describe,
    evaluate_generator,
)

CIRCULAR_STEPS = 12
"""Strength 1.0 of a circular direction turns its factor by 1/CIRCULAR_STEPS of a turn."""
EVAL_PRIOR_SEED = 9
"""Prior draws whose exact renders fit the directions and the encoder's spread."""
POLISH_STREAM = 1
"""Seed stream of the polish's fresh renders (training's renders have none)."""


@dataclass(frozen=True)
class FactorWorld:
    """Everything generator-specific: data, networks, meaning of directions, measures."""

    name: str
    dataset: str
    layout: FactorLatent
    class_names: tuple[str, ...]
    channels: int
    image_size: int
    render_latents: Callable[[F64, I64], F32]
    """(latents [n, N], class labels [n]) → renders [n, C, H, W] in [0, 1]."""
    real_renders: Callable[[int, int], tuple[F32, I64, F64]]
    """(n, stream) → grid renders (a fixed seed), their class labels and exact latents."""
    make_decoder: Callable[[], nn.Module]
    meaning: Mapping[str, str]
    """direction (= factor) → what a positive edit does."""
    measures: ImageMeasures
    """How its images are measured: direction quality, roundtrip, holes, condition accuracy."""
    preview: Callable[[int], tuple[F32, I64, int]]
    """seed → (preview latents, labels, grid columns)."""
    intro: str
    """The bundle's description; `scene_eval.describe` adds the directions measured reliable."""


@dataclass(frozen=True)
class FactorConfig:
    """Everything that shapes a run besides the world and the seed."""

    epochs: int = 5
    train_size: int = 100_000
    independent_fraction: float = 0.25
    """Share of training pairs whose factors are drawn independently and uniformly (the
    dataset grid's distribution) rather than from the prior's coupled copula, so the encoder
    and decoder also see every combination of the factor grid."""
    batch_size: int = 64
    lr: float = 1e-3
    polish_epochs: int = 0
    """Epochs of `polish_decoder` after training (0: none), on `polish_size` fresh renders."""
    polish_size: int = 30_000
    polish_lr: float = 3e-4
    polish_edge_weight: float = 1.0
    eval_size: int = 5_000
    metric_samples: int = 500
    threads: int = 2
    evaluation: SceneEvalSizes = field(default_factory=SceneEvalSizes)
    """How much the exported bundle's evaluation looks at (not part of the training run)."""


def train_world(
    world: FactorWorld,
    out_dir: Path,
    epochs: int | None = None,
    seed: int = 0,
    *,
    config: FactorConfig,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> Bundle:
    """Fail fast on bad input (before any training), then `train_factor_generator` with
    `config`'s thread count."""
    cfg = prepare_run(config, out_dir, epochs=epochs, seed=seed)
    with torch_threads(cfg.threads):
        return train_factor_generator(world, out_dir, cfg, seed, progress=progress,
                                      checkpoint=checkpoint)  # fmt: skip


def training_data(world: FactorWorld, cfg: FactorConfig, seed: int,
                  stream: int | None = None) -> FactorData:  # fmt: skip
    """Seeded training pairs: prior latents (and grid-uniform ones), labels, uint8 renders;
    `train_size` of them, or `polish_size` fresh ones from another seed stream."""
    key = [seed, 0xFAC7] if stream is None else [seed, 0xFAC7, stream]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    layout = world.layout
    size = cfg.train_size if stream is None else cfg.polish_size
    n_uniform = round(size * cfg.independent_fraction)
    z = np.concatenate([
        rng.standard_normal((size - n_uniform, layout.dim)),
        layout.latents(rng.random((n_uniform, layout.dim))),
    ])  # fmt: skip
    labels = rng.integers(0, len(world.class_names), size).astype(np.int64)
    images = np.empty((size, world.channels, world.image_size, world.image_size), np.uint8)
    for lo in range(0, size, 4096):
        sl = slice(lo, lo + 4096)
        images[sl] = np.round(world.render_latents(z[sl], labels[sl]) * 255.0)
    return FactorData(z, labels, images, layout)


def train_factor_generator(
    world: FactorWorld,
    out_dir: Path,
    cfg: FactorConfig,
    seed: int,
    *,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> Bundle:
    """Train (or load the networks from `checkpoint` when it holds this exact run), then
    fit directions, export, measure the exported bundle and write it to `out_dir`."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    decoder = world.make_decoder()
    encoder = FactorEncoder(world.layout, world.channels, len(world.class_names))
    run_key = _run_key(world, cfg, seed)
    train_seconds = 0.0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        if state.get("run_key") != run_key:
            raise ValueError(f"{checkpoint}: holds another run (config, seed or code differ)")
        decoder.load_state_dict(state["decoder"])
        encoder.load_state_dict(state["encoder"])
        train_seconds = float(state["train_seconds"])
        decoder.eval()
        encoder.eval()
    else:
        data = training_data(world, cfg, seed)
        log = fit_factor_model(decoder, encoder, data, epochs=cfg.epochs, seed=seed,
                               batch_size=cfg.batch_size, lr=cfg.lr, progress=progress,
                               description=f"{world.name} (seed {seed})")  # fmt: skip
        train_seconds = log.seconds
        del data
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"run_key": run_key, "decoder": decoder.state_dict(),
                        "encoder": encoder.state_dict(), "train_seconds": train_seconds},
                       checkpoint)  # fmt: skip
    if cfg.polish_epochs:
        fresh = training_data(world, cfg, seed, stream=POLISH_STREAM)
        train_seconds += polish_decoder(
            decoder, fresh, epochs=cfg.polish_epochs, seed=seed, lr=cfg.polish_lr,
            edge_weight=cfg.polish_edge_weight, batch_size=cfg.batch_size, progress=progress,
            description=f"{world.name} polish (seed {seed})").seconds
        del fresh

    layout = world.layout
    z_eval = layout.sample(cfg.eval_size, EVAL_PRIOR_SEED)
    y_eval = np.arange(cfg.eval_size, dtype=np.int64) % len(world.class_names)
    exact = layout.latents(layout.quantiles(z_eval))  # circular axes on the encoder's branch
    prior_renders = world.render_latents(z_eval, y_eval)
    spread = set_posterior_spread(encoder, prior_renders, y_eval, exact)
    found = _directions(world, encoder, prior_renders, y_eval, exact, seed)
    del prior_renders
    metrics: dict[str, float] = {f"encoder_rms_error_{f}": float(e)
                                 for f, e in zip(layout.factors, spread, strict=True)}
    notes = {f"encoder_rms_error_{f}": f"robust RMS error (1.4826 × median |error|) of the "
             f"encoder's latent on axis {f} over renders of {cfg.eval_size} prior draws; also "
             "the encoder's constant logvar" for f in layout.factors}  # fmt: skip
    images, labels, _ = world.real_renders(cfg.eval_size, 1)
    recon = run_batched(lambda x, y: decoder(encoder(x, y)[0], y), images, labels)
    metrics["recon_mse"] = recon_mse(images, recon)
    decode64 = float64_copy(decoder)
    item_labels = np.arange(cfg.metric_samples) % len(world.class_names)
    metrics |= interpolation_metrics(
        lambda z, items: run_batched(decode64, z, item_labels[items], dtype=torch.float64),
        world.layout.dim, samples=cfg.metric_samples, seed=seed,
    )  # fmt: skip
    notes["path_length_lerp"] = METRIC_NOTES["path_length_lerp"] + "; one label per pair"

    with tempfile.TemporaryDirectory(prefix=f"{world.name}-") as tmp:
        draft = _write(world, Path(tmp) / "draft", decoder, encoder, found, cfg, seed,
                       metrics, notes, train_seconds, started, {})  # fmt: skip
        measured = evaluate_generator(OnnxGenerator(draft), world.measures, world.real_renders,
                                      cfg.evaluation)
        return _write(world, out_dir, decoder, encoder, found, cfg, seed,
                      metrics | measured.metrics, notes | measured.notes, train_seconds,
                      started, measured.quality)  # fmt: skip


def _run_key(world: FactorWorld, cfg: FactorConfig, seed: int) -> str:
    """What identifies a trained checkpoint: world, layout, seed and the training fields (not
    the polish, which runs after the checkpoint)."""
    config = {k: v for k, v in asdict(cfg).items()
              if k != "evaluation" and not k.startswith("polish_")}  # fmt: skip
    text = json.dumps({"world": world.name, "config": config, "seed": seed,
                       "layout": repr(world.layout)}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _directions(world: FactorWorld, encoder: FactorEncoder, images: F32, labels: I64,
                latents: F64, seed: int) -> list[Discovered]:  # fmt: skip
    """InterFaceGAN-style: for each factor, the normal of a ridge regression (penalty 1) from
    encoded renders of prior draws to the factor's normal score (linear in the latent). A circular
    factor is fitted away from its wrap-around point (|s| < 0.8 · CIRCULAR_PERIOD / 2), where
    the same image has two far-apart scores. Strength 1.0 of a linear factor is one prior σ
    along the direction (latent distance 1: the prior is N(0, I)); of a circular factor, a
    twelfth of a turn, so a −3 … 3 sweep turns it by half a turn rather than three turns."""
    with torch.no_grad():
        mu, _ = encoder(torch.from_numpy(images), torch.from_numpy(labels))
    encoded = mu.numpy()
    scores = latents @ world.layout.mixing().T
    found = []
    for i, factor in enumerate(world.layout.factors):
        keep = np.ones(len(scores), bool)
        if factor in world.layout.circular:
            keep = np.abs(scores[:, i]) < 0.4 * CIRCULAR_PERIOD
        fitted, = supervised(encoded[keep], {factor: scores[keep, i]}, seed=seed, penalty=1.0,
                             what="encoded renders")  # fmt: skip
        if factor in world.layout.circular:
            sigma = CIRCULAR_PERIOD / CIRCULAR_STEPS
            unit = (f"1.0 = a {CIRCULAR_STEPS}th of a turn (latent distance {sigma:.4g}); "
                    f"positive = {world.meaning[factor]}")  # fmt: skip
        else:
            sigma = 1.0
            unit = (f"1.0 = 1 σ of the prior along the direction (latent distance 1); "
                    f"positive = {world.meaning[factor]}")  # fmt: skip
        found.append(replace(fitted, sigma=sigma, unit=unit, factor=factor))
    return found


def _write(world: FactorWorld, out_dir: Path, decoder: nn.Module, encoder: FactorEncoder,
           found: list[Discovered], cfg: FactorConfig, seed: int, metrics: dict[str, float],
           notes: dict[str, str], train_seconds: float, started: float,
           quality: Mapping[str, DirectionQualitySpec]) -> Bundle:  # fmt: skip
    layout, size = world.layout, world.image_size
    with tempfile.TemporaryDirectory(prefix=f"{world.name}-onnx-") as tmp:
        dec_path, enc_path = Path(tmp) / "decoder.onnx", Path(tmp) / "encoder.onnx"
        z = layout.sample(256, seed + 5).astype(np.float32)
        y = (np.arange(256) % len(world.class_names)).astype(np.int64)
        x, x_labels, _ = world.real_renders(256, 2)
        export_onnx(decoder, (torch.from_numpy(z[:2]), torch.from_numpy(y[:2])), dec_path,
                    input_names=["z", "label"], output_names=["x"])  # fmt: skip
        export_onnx(encoder, (torch.from_numpy(x[:2]), torch.from_numpy(x_labels[:2])), enc_path,
                    input_names=["x", "label"], output_names=["mu", "logvar"])  # fmt: skip
        metrics = dict(metrics)
        metrics["onnx_parity_max_abs_diff"] = max(
            onnx_parity(decoder, dec_path, {"z": z, "label": y}),
            onnx_parity(encoder, enc_path, {"x": x, "label": x_labels}),
        )
        pz, plabels, cols = world.preview(seed)
        preview = run_batched(decoder, pz.astype(np.float32), plabels)
        specs = [d.spec().model_copy(update={"quality": quality.get(d.name)}) for d in found]
        spec = BundleSpec(
            schema_version=SCHEMA_VERSION,
            name=world.name,
            description=describe(world.intro, quality),
            latent_dim=layout.dim,
            output=OutputSpec(shape=[world.channels, size, size], range=(0.0, 1.0)),
            condition=ConditionSpec(num_classes=len(world.class_names),
                                    labels=list(world.class_names)),
            decoder=DecoderSpec(file="decoder.onnx", input="z", output="x",
                                condition_input="label"),
            encoder=EncoderSpec(file="encoder.onnx", input="x", output_mean="mu",
                                output_logvar="logvar", condition_input="label"),
            max_batch_size=256,
            directions=specs,
            circular=[CircularSpec(factor=f, turn=t) for f, t in layout.turns().items()],
            metrics={k: float(f"{v:.6g}") for k, v in sorted(metrics.items())},
            metric_notes={**METRIC_NOTES, **notes},
            provenance=provenance(
                dataset=world.dataset, seed=seed, epochs=cfg.epochs,
                train_seconds=train_seconds, total_seconds=time.perf_counter() - started,
                train_size=cfg.train_size, independent_fraction=cfg.independent_fraction,
                latent_layout=_layout_text(layout),
                objective=_objective(cfg),
            ),
        )
        return write_bundle(out_dir, spec, decoder=dec_path, encoder=enc_path,
                            directions=as_arrays(found),
                            preview_png=rgb_grid_png(preview, cols=cols))  # fmt: skip


def _objective(cfg: FactorConfig) -> str:
    polish = (f"; then the decoder alone {cfg.polish_epochs} epochs on {cfg.polish_size:,} "
              f"fresh renders, BCE + {cfg.polish_edge_weight:g} × gradient-difference loss (L1), "
              f"lr {cfg.polish_lr:g}" if cfg.polish_epochs else "")  # fmt: skip
    return ("decoder: per-pixel BCE on renders of prior latents; encoder: squared error of its "
            f"head (normal scores, unit vectors of circular factors){polish}")


def _layout_text(layout: FactorLatent) -> str:
    coupled = "; ".join(f"s_{c} = {r:g}·z_{p} + {np.sqrt(1 - r * r):.3f}·z_{c}"
                        for c, (p, r) in layout.couplings.items())  # fmt: skip
    return (f"z axes {', '.join(layout.factors)}; factor quantile u = Φ(s), s = normal score"
            f"{' (' + coupled + ')' if coupled else ''}; circular: "
            f"{', '.join(layout.circular) or 'none'}")
