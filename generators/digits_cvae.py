"""`digits-cvae`: train the class-conditional VAE on scikit-learn's digits and write its bundle
(label-conditioned ONNX decoder + encoder, directions measured on the images, metrics,
preview). Example::

    bundle = train_digits_cvae(Path("generators/zoo/digits-cvae"), seed=0)
    bundle.spec.condition.labels          # ['0', …, '9']
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from latentserve.core.arrays import F32, F64, I64
from latentserve.core.seeding import sample_latents
from latentserve.generators.bundle_parts import grid_png, prepare_run, provenance
from latentserve.generators.digits import (
    DATASET,
    IMAGE_SIZE,
    LABELS,
    NUM_CLASSES,
    DigitImages,
    load_digit_images,
)
from latentserve.generators.digits_directions import (
    PLAIN_SUFFIX,
    Sweep,
    held_apart,
    plain_normals,
    select_unsupervised,
    sweep,
)
from latentserve.generators.digits_measures import (
    digit_classifier,
    digit_image_measures,
    spread_ratios,
)
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.generators.inference import (
    encode_with_samples,
    float64_copy,
    run_batched,
    torch_threads,
)
from latentserve.generators.models import DigitsCVAE, DigitsDecoder, DigitsEncoder
from latentserve.generators.training import Objective, fit_vae
from latentserve.registry.bundle.files import Bundle, write_bundle
from latentserve.registry.bundle.spec import (
    SCHEMA_VERSION,
    BundleSpec,
    ConditionSpec,
    DecoderSpec,
    DirectionQualitySpec,
    EncoderSpec,
    OutputSpec,
)
from latentserve.registry.quality.direction_fits import (
    Discovered,
    as_arrays,
    fit_metrics,
    pca_of_latents,
    sefa_from_matrix,
)
from latentserve.registry.quality.evaluate import edit_labels
from latentserve.registry.quality.latent_metrics import (
    METRIC_NOTES,
    interpolation_metrics,
    recon_mse,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator
from latentserve.registry.quality.scene_eval import (
    EDIT_SEEDS,
    SceneEvalSizes,
    describe,
    evaluate_generator,
)

NAME = "digits-cvae"
INTRO = ("Class-conditional VAE on scikit-learn digits (32×32): the label picks the digit, z "
         "carries the style")
HOLD_REPORTED = ("slant", "pos_y")
"""The leak the held-apart fit is there to cut: slant's plain normal moves the digit
vertically; both the plain normal's and the shipped direction's pos_y leak are recorded."""
SPREAD_SAMPLES = 3000


@dataclass(frozen=True)
class DigitsConfig:
    """Everything that shapes a digits-cvae run besides the seed; defaults = the shipped model."""

    latent_dim: int = 8
    epochs: int = 150
    batch_size: int = 64
    lr: float = 1e-3
    objective: Objective = field(default_factory=lambda: Objective(beta=1.0))
    n_pca: int = 4
    n_sefa: int = 4
    metric_samples: int = 1000
    threads: int = 2
    evaluation: SceneEvalSizes = field(default_factory=SceneEvalSizes)
    """How much the exported bundle's evaluation looks at (not part of the training run)."""


def train_digits_cvae(
    out_dir: Path,
    epochs: int | None = None,
    seed: int = 0,
    *,
    progress: bool = True,
    config: DigitsConfig | None = None,
) -> Bundle:
    """Train, find directions, export to ONNX, measure, and write the bundle to `out_dir`."""
    cfg = prepare_run(config or DigitsConfig(), out_dir, epochs=epochs, seed=seed)
    with torch_threads(cfg.threads):
        return _train(out_dir, seed, cfg, progress)


def _train(out_dir: Path, seed: int, cfg: DigitsConfig, progress: bool) -> Bundle:
    torch.manual_seed(seed)
    started = time.perf_counter()
    data = load_digit_images()
    vae = DigitsCVAE(cfg.latent_dim, NUM_CLASSES)
    log = fit_vae(
        vae,
        torch.from_numpy(data.train_images),
        torch.from_numpy(data.train_labels),
        epochs=cfg.epochs,
        objective=cfg.objective,
        seed=seed,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        progress=progress,
        description=f"{NAME} (seed {seed})",
    )
    decoder, encoder = DigitsDecoder(vae), DigitsEncoder(vae)
    images = np.concatenate([data.train_images, data.test_images])
    labels = np.concatenate([data.train_labels, data.test_labels])
    mu, z_post = encode_with_samples(lambda x, y: vae.encode(x, y), (images, labels), seed=seed)
    named = held_apart(z_post, images, labels, seed)
    candidates = pca_of_latents(mu, cfg.n_pca, what="encoded latents")
    candidates += sefa_from_matrix(vae.first_decoder_weight().detach().numpy(), cfg.n_sefa,
                                   latents=mu, what="encoded latents",
                                   where="the decoder's first linear weight")  # fmt: skip
    plain = plain_normals(z_post, images, labels, seed, HOLD_REPORTED[:1])
    metrics, notes = fit_metrics(named)
    metrics |= _model_metrics(vae, decoder, data, cfg, seed)
    notes["path_length_lerp"] = METRIC_NOTES["path_length_lerp"] + "; one random label per pair"
    provenance_ = {"train_seconds": log.seconds, "final_train_loss": round(log.final_loss, 3)}

    with tempfile.TemporaryDirectory(prefix="digits-cvae-") as tmp:
        onnx = _export(decoder, encoder, vae, data, cfg, seed, Path(tmp), metrics)
        writer = _Writer(onnx, cfg, seed, started, provenance_,
                         grid_png(_preview(decoder, cfg, seed), cols=NUM_CLASSES))  # fmt: skip
        seeds = list(EDIT_SEEDS[: cfg.evaluation.edit_seeds])
        base_labels = edit_labels(NUM_CLASSES, seeds)
        # 1. every candidate (and the plain normals) in a draft: what does each one move?
        draft = writer.write(Path(tmp) / "draft", [*named, *candidates, *plain], metrics, notes)
        gen = OnnxGenerator(draft)
        bases = gen.seed_latents(seeds)
        sweeps = {d.name: sweep(gen, d.name, bases, base_labels) for d in [*named, *plain]}
        kept, dropped = select_unsupervised(
            gen, candidates, named, bases, base_labels,
            {d.name: sweeps[d.name].moves_up(d.name) for d in named})  # fmt: skip
        found = [*named, *kept]
        metrics |= _leak_metrics(sweeps, notes, len(seeds))
        writer = replace(writer, dropped=dropped)
        # 2. the shipped set, measured as served
        measure_of = {d.name: d.factor or d.name for d in found}
        draft = writer.write(Path(tmp) / "shipped", found, metrics, notes)
        measured = evaluate_generator(OnnxGenerator(draft), digit_image_measures(measure_of),
                                      _test_digits(data), cfg.evaluation)  # fmt: skip
        metrics |= measured.metrics | _spread_metrics(OnnxGenerator(draft), data, notes)
        notes |= measured.notes
        metrics["digit_classifier_accuracy"] = digit_classifier()[1]
        notes["digit_classifier_accuracy"] = (
            "accuracy on the real test digits of the classifier that judges the class "
            "(logistic regression on 8×8 pixels of the real training digits)")
        for name in ("thickness", "slant"):  # the names promotion gates know (monotonicity_*)
            metrics[f"monotonicity_{name}"] = measured.metrics[f"direction.{name}.spearman_within"]
            notes[f"monotonicity_{name}"] = f"= direction.{name}.spearman_within"
        return writer.write(out_dir, found, metrics, notes, measured.quality)


def _model_metrics(vae: DigitsCVAE, decoder: DigitsDecoder, data: DigitImages,
                   cfg: DigitsConfig, seed: int) -> dict[str, float]:  # fmt: skip
    """Reconstruction of the test digits and the interpolation metrics (torch, float64)."""
    decode64 = float64_copy(decoder)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1]))
    item_labels = rng.integers(0, NUM_CLASSES, cfg.metric_samples)
    recon = run_batched(
        lambda t, y: decoder(vae.encode(t, y)[0], y), data.test_images, data.test_labels
    )
    metrics = {"recon_mse": recon_mse(data.test_images, recon)}
    metrics |= interpolation_metrics(
        lambda z, items: run_batched(decode64, z, item_labels[items], dtype=torch.float64),
        cfg.latent_dim,
        samples=cfg.metric_samples,
        seed=seed,
    )
    return metrics


def _leak_metrics(sweeps: Mapping[str, Sweep], notes: dict[str, str],
                  seeds: int) -> dict[str, float]:  # fmt: skip
    """How far slant's plain normal and the shipped, held-apart slant move pos_y."""
    name, leak = HOLD_REPORTED
    out = {}
    for key, which, text in ((f"{name}{PLAIN_SUFFIX}", "plain", "its plain ridge normal"),
                             (name, "held", "the shipped direction (held apart)")):
        result = sweeps[key]
        metric = f"direction.{name}.{leak}_leak_{which}"
        out[metric] = result.moved[leak]
        out[f"direction.{name}.{leak}_rho_{which}"] = result.within[leak]
        notes[metric] = (f"mean |change| of {leak} over a −3…3 σ edit along {text}, in its "
                         f"spread over {seeds} seeds (Sample item 0 of seeds 1…{seeds})")
        notes[f"direction.{name}.{leak}_rho_{which}"] = (
            f"mean per-seed Spearman ρ of strength vs {leak} along {text}")
    return out


def _spread_metrics(gen: OnnxGenerator, data: DigitImages,
                    notes: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """Diversity: the within-class spread of each measure over prior samples vs real digits."""
    z = gen.sample_latents(0, SPREAD_SAMPLES)
    y = np.arange(SPREAD_SAMPLES, dtype=np.int64) % NUM_CLASSES
    ratios = spread_ratios(gen.decode(z, y), y, data.test_images, data.test_labels)
    out = {}
    for name, value in ratios.items():
        out[f"sample_spread_{name}"] = value
        notes[f"sample_spread_{name}"] = (
            f"std of {name} minus its class mean over {SPREAD_SAMPLES:,} prior samples "
            "(Sample seed 0, labels cycling) / the same over the real test digits (1 = as "
            "diverse as real digits)")
    return out


def _test_digits(data: DigitImages) -> Callable[[int, int], tuple[F32, I64, F64]]:
    """The real test digits as `evaluate_generator` asks for renders (n, stream)."""

    def real(n: int, _stream: int) -> tuple[F32, I64, F64]:
        n = min(n, len(data.test_images))
        return data.test_images[:n], data.test_labels[:n], np.zeros((n, 0))

    return real


def _preview(decoder: DigitsDecoder, cfg: DigitsConfig, seed: int) -> F32:
    z_preview = np.repeat(sample_latents(seed + 1, 8, cfg.latent_dim), NUM_CLASSES, axis=0)
    y_preview = np.tile(np.arange(NUM_CLASSES, dtype=np.int64), 8)
    out: F32 = run_batched(decoder, z_preview, y_preview)
    return out


@dataclass(frozen=True)
class _Onnx:
    decoder: Path
    encoder: Path


def _export(decoder: DigitsDecoder, encoder: DigitsEncoder, vae: DigitsCVAE, data: DigitImages,
            cfg: DigitsConfig, seed: int, tmp: Path,
            metrics: dict[str, float]) -> _Onnx:  # fmt: skip
    """Export both networks and record their torch ↔ onnxruntime parity in `metrics`."""
    dec_path, enc_path = tmp / "decoder.onnx", tmp / "encoder.onnx"
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1]))
    rng.integers(0, NUM_CLASSES, cfg.metric_samples)  # the interpolation metrics' labels
    z256 = sample_latents(seed, 256, cfg.latent_dim)
    y256 = rng.integers(0, NUM_CLASSES, 256).astype(np.int64)
    x256 = data.test_images[:256]
    export_onnx(decoder, (torch.from_numpy(z256[:2]), torch.from_numpy(y256[:2])), dec_path,
                input_names=["z", "label"], output_names=["x"])  # fmt: skip
    export_onnx(encoder, (torch.from_numpy(x256[:2]), torch.from_numpy(y256[:2])), enc_path,
                input_names=["x", "label"], output_names=["mu", "logvar"])  # fmt: skip
    metrics["onnx_parity_max_abs_diff"] = max(
        onnx_parity(decoder, dec_path, {"z": z256, "label": y256}),
        onnx_parity(encoder, enc_path, {"x": x256, "label": data.test_labels[:256]}),
    )
    return _Onnx(dec_path, enc_path)


@dataclass(frozen=True)
class _Writer:
    """Writes the bundle (drafts and the final one) around the exported networks."""

    onnx: _Onnx
    cfg: DigitsConfig
    seed: int
    started: float
    provenance: Mapping[str, float]
    preview_png: bytes
    dropped: Mapping[str, str] = field(default_factory=dict)
    """PCA/SeFa candidates not shipped → why (recorded in the provenance)."""

    def write(self, out_dir: Path, found: Sequence[Discovered], metrics: Mapping[str, float],
              notes: Mapping[str, str],
              quality: Mapping[str, DirectionQualitySpec] | None = None) -> Bundle:  # fmt: skip
        quality = quality or {}
        specs = [d.spec().model_copy(update={"quality": quality.get(d.name)}) for d in found]
        spec = BundleSpec(
            schema_version=SCHEMA_VERSION,
            name=NAME,
            description=describe(INTRO, quality) if quality else INTRO + ".",
            latent_dim=self.cfg.latent_dim,
            output=OutputSpec(shape=[1, IMAGE_SIZE, IMAGE_SIZE], range=(0.0, 1.0)),
            condition=ConditionSpec(num_classes=NUM_CLASSES, labels=list(LABELS)),
            decoder=DecoderSpec(file="decoder.onnx", input="z", output="x",
                                condition_input="label"),
            encoder=EncoderSpec(file="encoder.onnx", input="x", output_mean="mu",
                                output_logvar="logvar", condition_input="label"),
            max_batch_size=256,
            directions=specs,
            metrics={k: float(f"{v:.6g}") for k, v in sorted(metrics.items())},
            metric_notes={**METRIC_NOTES, **notes},
            provenance=provenance(
                dataset=DATASET,
                seed=self.seed,
                epochs=self.cfg.epochs,
                train_seconds=self.provenance["train_seconds"],
                total_seconds=time.perf_counter() - self.started,
                train_size=1437,
                test_size=360,
                objective=self.cfg.objective.describe(),
                final_train_loss=self.provenance["final_train_loss"],
                directions_dropped=dict(self.dropped),
            ),
        )
        return write_bundle(out_dir, spec, decoder=self.onnx.decoder, encoder=self.onnx.encoder,
                            directions=as_arrays(found), preview_png=self.preview_png)
