"""`digits-cvae`: train the class-conditional VAE on scikit-learn's digits and write its bundle
(label-conditioned ONNX decoder + encoder, directions, metrics, preview). Example::

    bundle = train_digits_cvae(Path("generators/zoo/digits-cvae"), seed=0)
    bundle.spec.condition.labels          # ['0', …, '9']
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from latentserve.core.arrays import F32, I64
from latentserve.core.latent_ops import edit_latents
from latentserve.core.seeding import sample_latents
from latentserve.generators.bundle_parts import grid_png, prepare_run, provenance
from latentserve.generators.digits import (
    DATASET,
    IMAGE_SIZE,
    LABELS,
    NUM_CLASSES,
    ink_mass,
    load_digit_images,
    minus_class_mean,
    slant,
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
    EncoderSpec,
    OutputSpec,
)
from latentserve.registry.quality.direction_fits import (
    Discovered,
    as_arrays,
    fit_metrics,
    pca_of_latents,
    sefa_from_matrix,
    supervised,
)
from latentserve.registry.quality.latent_eval import STRENGTHS, Measured, direction_quality
from latentserve.registry.quality.latent_metrics import (
    METRIC_NOTES,
    interpolation_metrics,
    recon_mse,
)

NAME = "digits-cvae"
ATTRIBUTES = {"thickness": ink_mass, "slant": slant}
_MEANING = {"thickness": "thicker strokes (more ink)", "slant": "top leans further right"}


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
    edit_bases: int = 64
    metric_samples: int = 1000
    threads: int = 2


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

    found = _directions(images, labels, z_post, mu, vae, cfg, seed)
    metrics, notes = fit_metrics(found)
    bases = mu[len(data.train_images) :][: cfg.edit_bases]
    base_labels = data.test_labels[: cfg.edit_bases]
    by_name = {d.name: d for d in found}

    def edit(name: str, strengths: Sequence[float], conditional_on: Sequence[str]) -> F32:
        rows = edit_latents(bases, by_name[name].vector, strengths, by_name[name].sigma)
        out = run_batched(decoder, rows, np.repeat(base_labels, len(strengths)))
        return out.reshape(len(bases), len(strengths), *out.shape[1:])

    def measure(images: F32) -> Measured:
        return Measured({name: f(images) for name, f in ATTRIBUTES.items()})

    for name in ATTRIBUTES:
        metrics[f"monotonicity_{name}"] = direction_quality(edit, measure, {name: name})[
            name].within
        notes[f"monotonicity_{name}"] = (
            f"mean over {len(bases)} encoded test digits of Spearman ρ between edit strength "
            f"(−3…3 σ, {len(STRENGTHS)} steps) and the {name} measured on the decoded image"
        )

    decode64 = float64_copy(decoder)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1]))
    item_labels = rng.integers(0, NUM_CLASSES, cfg.metric_samples)
    recon = run_batched(
        lambda t, y: decoder(vae.encode(t, y)[0], y), data.test_images, data.test_labels
    )
    metrics["recon_mse"] = recon_mse(data.test_images, recon)
    metrics |= interpolation_metrics(
        lambda z, items: run_batched(decode64, z, item_labels[items], dtype=torch.float64),
        cfg.latent_dim,
        samples=cfg.metric_samples,
        seed=seed,
    )
    notes["path_length_lerp"] = METRIC_NOTES["path_length_lerp"] + "; one random label per pair"

    with tempfile.TemporaryDirectory(prefix="digits-cvae-onnx-") as tmp:
        dec_path, enc_path = Path(tmp) / "decoder.onnx", Path(tmp) / "encoder.onnx"
        z256 = sample_latents(seed, 256, cfg.latent_dim)
        y256 = rng.integers(0, NUM_CLASSES, 256).astype(np.int64)
        x256 = data.test_images[:256]
        export_onnx(
            decoder,
            (torch.from_numpy(z256[:2]), torch.from_numpy(y256[:2])),
            dec_path,
            input_names=["z", "label"],
            output_names=["x"],
        )
        export_onnx(
            encoder,
            (torch.from_numpy(x256[:2]), torch.from_numpy(y256[:2])),
            enc_path,
            input_names=["x", "label"],
            output_names=["mu", "logvar"],
        )
        metrics["onnx_parity_max_abs_diff"] = max(
            onnx_parity(decoder, dec_path, {"z": z256, "label": y256}),
            onnx_parity(encoder, enc_path, {"x": x256, "label": data.test_labels[:256]}),
        )
        z_preview = np.repeat(sample_latents(seed + 1, 8, cfg.latent_dim), NUM_CLASSES, axis=0)
        y_preview = np.tile(np.arange(NUM_CLASSES, dtype=np.int64), 8)
        preview = run_batched(decoder, z_preview, y_preview)
        spec = BundleSpec(
            schema_version=SCHEMA_VERSION,
            name=NAME,
            description=(
                "Class-conditional VAE on scikit-learn digits (32×32): the label picks the digit, "
                "z carries the style (thickness, slant, width) that directions edit."
            ),
            latent_dim=cfg.latent_dim,
            output=OutputSpec(shape=[1, IMAGE_SIZE, IMAGE_SIZE], range=(0.0, 1.0)),
            condition=ConditionSpec(num_classes=NUM_CLASSES, labels=list(LABELS)),
            decoder=DecoderSpec(
                file="decoder.onnx", input="z", output="x", condition_input="label"
            ),
            encoder=EncoderSpec(
                file="encoder.onnx",
                input="x",
                output_mean="mu",
                output_logvar="logvar",
                condition_input="label",
            ),
            max_batch_size=256,
            directions=[d.spec() for d in found],
            metrics={k: float(f"{v:.6g}") for k, v in sorted(metrics.items())},
            metric_notes={**METRIC_NOTES, **notes},
            provenance=provenance(
                dataset=DATASET,
                seed=seed,
                epochs=cfg.epochs,
                train_seconds=log.seconds,
                total_seconds=time.perf_counter() - started,
                train_size=len(data.train_images),
                test_size=len(data.test_images),
                objective=cfg.objective.describe(),
                final_train_loss=round(log.final_loss, 3),
            ),
        )
        return write_bundle(
            out_dir,
            spec,
            decoder=dec_path,
            encoder=enc_path,
            directions=as_arrays(found),
            preview_png=grid_png(preview, cols=NUM_CLASSES),
        )


def _directions(images: F32, labels: I64, z_post: F32, mu: F32, vae: DigitsCVAE,
                cfg: DigitsConfig, seed: int) -> list[Discovered]:
    """Supervised attribute directions (ridge normal on posterior samples, attribute minus
    its class mean; penalty 1), PCA and SeFa of the encoded means."""
    targets = {name: minus_class_mean(measure(images), labels)
               for name, measure in ATTRIBUTES.items()}  # fmt: skip
    meaning = {name: f"{text} (attribute measured on the image, minus its class mean)"
               for name, text in _MEANING.items()}  # fmt: skip
    fitted = supervised(z_post, targets, seed=seed, penalty=1.0, meaning=meaning,
                        what="posterior samples of encoded digits")
    found = [replace(d, factor=d.name) for d in fitted]
    found += pca_of_latents(mu, cfg.n_pca, what="encoded latents")
    found += sefa_from_matrix(vae.first_decoder_weight().detach().numpy(), cfg.n_sefa,
                              latents=mu, what="encoded latents",
                              where="the decoder's first linear weight")
    return found
