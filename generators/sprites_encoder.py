"""The sprites-vae encoder refit: its `FactorEncoder` fine-tuned on the data spec's renders
*and* on sprites drawn by other routines (`drawn_sprites`: jittered outlines, the parametric
heart, strokes, anti-aliasing, blur, faint ink, noise), each paired with the factors it was
drawn from, so Encode reads the class-conditional factors of pictures the decoder never drew.
The decoder, the directions and the latent semantics stay as they are (same head: normal
scores, unit vectors of circular factors, mapped to the latent analytically). Example::

    bundle = refit_sprites_encoder(Path("generators/zoo/sprites-vae"), RefitConfig(), seed=0)
    bundle.spec.metrics["encoder_drawn_orientation_error_deg_heart"]

It fine-tunes the encoder trained jointly with the decoder (whose ONNX weights it loads); the
same start, seed and thread count give the same encoder.onnx, byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.drawn_sprites import draw_sprites
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.generators.factor_models import FactorEncoder
from latentserve.generators.factor_pipeline import EVAL_PRIOR_SEED
from latentserve.generators.factor_training import set_posterior_spread
from latentserve.generators.inference import torch_threads
from latentserve.generators.sprite_measures import SPRITE_MEASURES
from latentserve.generators.sprites import SHAPES, SYMMETRY_ORDER
from latentserve.generators.sprites_vae import LAYOUT, real_renders, render_latents
from latentserve.generators.training import run_epochs
from latentserve.registry.bundle.files import Bundle, load_bundle, write_bundle
from latentserve.registry.bundle.spec import PREVIEW_FILE, BundleSpec
from latentserve.registry.quality.latent_metrics import recon_mse
from latentserve.registry.quality.onnx_generator import OnnxGenerator
from latentserve.registry.quality.scene_eval import roundtrip_errors

_K = np.array([SYMMETRY_ORDER[s] for s in SHAPES], np.int64)
_Terms = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
DRAWN_CHECK_SEED = 0xD4A
"""Seed of the held-out drawn sprites the refit is measured on (never trained on)."""


@dataclass(frozen=True)
class RefitConfig:
    """How the encoder is refitted."""

    samples: int = 960_000
    """Training pairs, each seen once (fresh chunks of `chunk` pairs)."""
    chunk: int = 16_000
    drawn_fraction: float = 0.65
    """Share of pairs drawn by `drawn_sprites`; the rest are the data spec's renders."""
    drawn_shapes: tuple[float, ...] = (0.25, 0.25, 0.5)
    """Share of each shape (SHAPES order) among the drawn pairs: the heart, whose drawings vary
    most and whose angle is read worst, gets half (renders keep the three equally likely)."""
    independent_fraction: float = 0.25
    """Share of factor draws uniform over the grid rather than from the prior (as training)."""
    batch_size: int = 64
    lr: float = 3e-4
    """Peak learning rate of the fine-tuning (cosine decay to a twentieth)."""
    threads: int = 1
    eval_size: int = 5_000
    drawn_check: int = 300
    """Held-out drawn sprites per shape for the `encoder_drawn_*` metrics."""


def training_chunk(cfg: RefitConfig, seed: int, index: int) -> tuple[np.ndarray, I64, F32]:
    """Chunk `index` of the pairs: uint8 images [n, 1, 64, 64], labels [n], head targets."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0xE2C]))
    n = cfg.chunk
    n_uniform = round(n * cfg.independent_fraction)
    z = np.concatenate([rng.standard_normal((n - n_uniform, LAYOUT.dim)),
                        LAYOUT.latents(rng.random((n_uniform, LAYOUT.dim)))])  # fmt: skip
    drawn = rng.random(n) < cfg.drawn_fraction
    labels = np.where(drawn, rng.choice(len(SHAPES), n, p=cfg.drawn_shapes),
                      rng.integers(0, len(SHAPES), n)).astype(np.int64)
    u = LAYOUT.quantiles(z)
    images = np.empty((n, 1, 64, 64), np.uint8)
    rendered = ~drawn
    images[rendered] = np.round(render_latents(z[rendered], labels[rendered]) * 255.0)
    images[drawn] = np.round(_draw(u[drawn], labels[drawn], rng) * 255.0)
    return images, labels, LAYOUT.head_targets(u).astype(np.float32)


def _draw(u: F64, labels: I64, rng: np.random.Generator) -> F32:
    """Drawn sprites of quantiles [n, 4]: the angle anywhere on the full turn (one of the k
    symmetric copies), since drawings are not exactly symmetric."""
    period = 2.0 * np.pi / _K[labels]
    turns = rng.integers(0, _K[labels])
    angle = (u[:, 1] + turns) * period
    return draw_sprites(labels, 0.5 + 0.5 * u[:, 0], angle, u[:, 2], u[:, 3], rng)


def load_encoder(path: Path) -> FactorEncoder:
    """A sprites-vae `FactorEncoder` with the weights of an exported encoder.onnx (its
    initializers are named as the state dict; logvar is set again after fitting)."""
    encoder = FactorEncoder(LAYOUT, 1, len(SHAPES))
    state = encoder.state_dict()
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(path)).graph.initializer if i.name in state}
    missing = set(state) - set(weights) - {"logvar"}
    if missing:
        raise ValueError(f"{path}: not a sprites-vae encoder (no {', '.join(sorted(missing))})")
    state.update(weights)
    encoder.load_state_dict(state)
    return encoder


def train_encoder(start: FactorEncoder, cfg: RefitConfig, seed: int, *,
                  progress: bool = True) -> FactorEncoder:  # fmt: skip
    """`start` fine-tuned in place on `cfg.samples` pairs (Adam, cosine decay, squared error
    of the head, as the joint training's encoder term)."""
    torch.manual_seed(seed)
    encoder = start
    chunks = math.ceil(cfg.samples / cfg.chunk)
    steps = chunks * math.ceil(cfg.chunk / cfg.batch_size)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=cfg.lr / 20)
    order = torch.Generator().manual_seed(seed)
    encoder.train()
    for index in range(chunks):
        images_u8, labels_np, targets_np = training_chunk(cfg, seed, index)
        step = _head_step(encoder, torch.from_numpy(images_u8), torch.from_numpy(labels_np),
                          torch.from_numpy(targets_np))
        run_epochs(step, [opt], len(images_u8), epochs=1, batch_size=cfg.batch_size,
                   generator=order, progress=progress, terms=("head", "head"),
                   description=f"sprites-vae encoder, chunk {index + 1}/{chunks}",
                   schedulers=[sched])  # fmt: skip
    encoder.eval()
    return encoder


def _head_step(encoder: FactorEncoder, images: torch.Tensor, labels: torch.Tensor,
               targets: torch.Tensor) -> Callable[[torch.Tensor, int], _Terms]:
    """The training step on one chunk: squared error of the head, summed over its outputs."""

    def step(idx: torch.Tensor, _at: int) -> _Terms:
        x = images[idx].float() / 255.0
        err = (encoder.head(x, labels[idx]) - targets[idx]).pow(2).sum(1).mean()
        return err, err, err

    return step


def drawn_check(gen: OnnxGenerator, per_shape: int) -> dict[str, float]:
    """Encode held-out drawn sprites: per shape, the share whose best-fitting reconstruction
    (MSE over the three labels) is their own class, and the mean orientation error (degrees,
    within one symmetry period, true label given)."""
    rng = np.random.default_rng(DRAWN_CHECK_SEED)
    n = per_shape * len(SHAPES)
    labels = np.repeat(np.arange(len(SHAPES)), per_shape).astype(np.int64)
    u = rng.random((n, 4))
    images = _draw(u, labels, rng)
    tiled = np.repeat(images, len(SHAPES), axis=0)
    tried = np.tile(np.arange(len(SHAPES)), n).astype(np.int64)
    recon = gen.decode(gen.encode(tiled, tried), tried)
    best = np.mean((recon - tiled) ** 2, axis=(1, 2, 3)).reshape(n, len(SHAPES)).argmin(1)
    z = gen.encode(images, labels)
    got = LAYOUT.quantiles(z.astype(np.float64))[:, 1]
    diff = np.abs(got - u[:, 1])
    err = np.degrees(np.minimum(diff, 1.0 - diff) * 2.0 * np.pi / _K[labels])
    out: dict[str, float] = {}
    for s, name in enumerate(SHAPES):
        sel = labels == s
        out[f"encoder_drawn_class_accuracy_{name}"] = float(np.mean(best[sel] == s))
        out[f"encoder_drawn_orientation_error_deg_{name}"] = float(np.mean(err[sel]))
    return out


def refit_sprites_encoder(root: Path, cfg: RefitConfig = RefitConfig(), seed: int = 0, *,
                          start: Path | None = None, progress: bool = True) -> Bundle:
    """Fine-tune the encoder at `start` (default: the bundle's own; the shipped one started
    from the encoder trained jointly with the decoder by `latentserve train sprites-vae`) and
    rewrite the sprites-vae bundle at `root` with it and its measured metrics (decoder,
    directions and preview unchanged). The start's SHA-256 goes into the provenance: the same
    start, seed and threads give the same encoder.onnx."""
    started = time.perf_counter()
    bundle = load_bundle(root)
    start_path = start if start is not None else root / "encoder.onnx"
    start_bytes = start_path.read_bytes()
    with torch_threads(cfg.threads):
        encoder = train_encoder(load_encoder(start_path), cfg, seed, progress=progress)
        train_seconds = time.perf_counter() - started
        z_eval = LAYOUT.sample(cfg.eval_size, EVAL_PRIOR_SEED)
        y_eval = np.arange(cfg.eval_size, dtype=np.int64) % len(SHAPES)
        exact = LAYOUT.latents(LAYOUT.quantiles(z_eval))
        spread = set_posterior_spread(encoder, render_latents(z_eval, y_eval), y_eval, exact)
        with tempfile.TemporaryDirectory(prefix="sprites-encoder-") as tmp:
            path = Path(tmp) / "encoder.onnx"
            x, x_labels, _ = real_renders(256, 2)
            export_onnx(encoder, (torch.from_numpy(x[:2]), torch.from_numpy(x_labels[:2])), path,
                        input_names=["x", "label"], output_names=["mu", "logvar"])  # fmt: skip
            parity = onnx_parity(encoder, path, {"x": x, "label": x_labels})
            onnx_bytes = path.read_bytes()
    metrics = {f"encoder_rms_error_{f}": float(e)
               for f, e in zip(LAYOUT.factors, spread, strict=True)}  # fmt: skip
    metrics["encoder_onnx_parity_max_abs_diff"] = parity
    with tempfile.TemporaryDirectory(prefix="sprites-draft-") as tmp:
        draft = _rewrite(bundle, Path(tmp) / "draft", bundle.spec, onnx_bytes)
        gen = OnnxGenerator(draft, threads=cfg.threads)
        images, labels, _ = real_renders(cfg.eval_size, 1)
        metrics["recon_mse"] = recon_mse(images, gen.decode(gen.encode(images, labels), labels))
        shown, shown_labels, _ = real_renders(600, 4)
        back = gen.decode(gen.encode(shown, shown_labels), shown_labels)
        metrics |= roundtrip_errors(shown, back, shown_labels, SPRITE_MEASURES)
        metrics |= drawn_check(gen, cfg.drawn_check)
    spec = bundle.spec
    notes = {
        "encoder_onnx_parity_max_abs_diff": "max |torch − onnxruntime| of the refitted encoder "
        "(onnx_parity_max_abs_diff: of the decoder and the jointly trained encoder)",
        **{f"encoder_drawn_class_accuracy_{s}": f"share of {cfg.drawn_check} held-out {s}s "
           "drawn by another routine (drawn_sprites: PIL polygons, jittered outlines, the "
           "parametric heart, strokes, blur) whose Encode → Decode fits best (MSE) with "
           "their own label among the three" for s in SHAPES},
        **{f"encoder_drawn_orientation_error_deg_{s}": f"mean orientation error (degrees, "
           f"within one symmetry period) of Encode of those {s}s, true label given"
           for s in SHAPES},
    }
    provenance = dict(spec.provenance)
    shares = " / ".join(f"{w:.0%}" for w in cfg.drawn_shapes)
    provenance["encoder"] = (
        f"fine-tuned alone from the encoder.onnx of SHA-256 "
        f"{hashlib.sha256(start_bytes).hexdigest()[:16]}… (seed {seed}, {cfg.threads} torch "
        f"thread(s), {cfg.samples:,} fresh pairs, {cfg.drawn_fraction:.0%} drawn by "
        f"latentserve.generators.drawn_sprites ({shares} {' / '.join(SHAPES)}), the rest "
        f"data-spec renders; "
        f"{train_seconds:.0f} s): `latentserve train sprites-vae-encoder`"
    )
    new = spec.model_copy(update={
        "metrics": {**spec.metrics, **{k: float(f"{v:.6g}") for k, v in metrics.items()}},
        "metric_notes": {**spec.metric_notes, **notes},
        "provenance": provenance,
    })  # fmt: skip
    return _rewrite(bundle, root, BundleSpec.parse(new.model_dump(mode="json")), onnx_bytes)


def _rewrite(bundle: Bundle, out_dir: Path, spec: BundleSpec, encoder: bytes) -> Bundle:
    preview = bundle.root / PREVIEW_FILE
    return write_bundle(
        out_dir, spec, decoder=bundle.decoder_path.read_bytes(), encoder=encoder,
        directions={n: (d.vector, d.sigma) for n, d in bundle.directions.items()},
        preview_png=preview.read_bytes() if preview.is_file() else None)  # fmt: skip
