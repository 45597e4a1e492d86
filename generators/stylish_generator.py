"""`stylish-shapes`: the StyleGAN-like W+ generator of stylish shapes and its one-command run —
train (or load a checkpoint), export mapping.onnx and the W+ decoder.onnx, compute w̄, fit
the named directions in W with their default layer ranges, measure the exported bundle on its
images, draw its pictures and write the bundle. Example::

    bundle = train_stylish(Path("generators/zoo/stylish-shapes"), seed=0)

Design (why, in generators/README.md): the data set's factors are functions of z, so the
networks are fitted to renders of the prior (no discriminator), and style mixing with a known
answer teaches the coarse styles geometry and the fine styles appearance.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentserve.core.arrays import F32
from latentserve.core.seeding import sample_latents, seed_latents
from latentserve.generators.bundle_parts import prepare_run, provenance
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.generators.inference import torch_threads
from latentserve.generators.stylish_data import (
    DATASET_TEXT,
    FACTORS,
    GEOMETRY,
    LATENT_DIM,
    factors_of,
    mixed_values,
    render,
    render_latents,
    scores_of,
)
from latentserve.generators.stylish_eval import LayerDirection, evaluate_layers, mix_ws
from latentserve.generators.stylish_model import NUM_WS, W_DIM, Mapping, Synthesis
from latentserve.generators.stylish_onnx import OUTPUT_RANGE, WPlusOnnx, noise_names
from latentserve.generators.stylish_pictures import draw_pictures
from latentserve.generators.stylish_training import StylishConfig, TrainLog, fit_stylish
from latentserve.registry.bundle.files import Bundle, write_bundle
from latentserve.registry.bundle.preview import rgb_grid_png
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.registry.bundle.truncation import mean_of_mapping
from latentserve.registry.quality.direction_fits import (
    Discovered,
    as_arrays,
    fit_metrics,
    supervised,
)

NAME = "stylish-shapes"
CONFIG = StylishConfig()
COARSE = (0, CONFIG.crossover)
FINE = (CONFIG.crossover, NUM_WS)
DIRECTION_SAMPLES = 20_000
"""Mapped prior draws (seed DIRECTION_SEED) the directions are fitted on."""
DIRECTION_SEED = 9
EDIT_SEEDS = tuple(range(1, 25))
"""Bases of the quality sweeps: item 0 of Sample(seed), ψ = 1."""
MIX_ROWS = tuple(range(100, 112))
MIX_COLS = tuple(range(200, 212))
FIDELITY_SAMPLES = 512
MEANING = {
    "shape": "squarer outline (diamond → ellipse → rounded rectangle)",
    "scale": "larger object",
    "orientation": "the long axis turns clockwise",
    "pos_x": "object moves right",
    "pos_y": "object moves down",
    "object_hue": "object hue turns red → yellow → green → blue → magenta",
    "background_hue": "background hue turns red → yellow → green → blue → magenta",
    "stripes": "more stripes along the object",
}
INTRO = ("StyleGAN-like W+ generator of stylish shapes (64×64 RGB): mapping z → w, synthesis "
         f"with {NUM_WS} style layers and per-layer noise; coarse layers [{COARSE[0]}, "
         f"{COARSE[1]}) draw the geometry (shape, scale, orientation, position), fine layers "
         f"[{FINE[0]}, {FINE[1]}) the appearance (object and background hue, stripes)")


def train_stylish(out_dir: Path, epochs: int | None = None, seed: int = 0, *,
                  progress: bool = True, config: StylishConfig | None = None,
                  checkpoint: Path | None = None, gallery: Path | None = None) -> Bundle:
    """Check the inputs, train (or load `checkpoint`), then export, measure and write the
    bundle to `out_dir` (and the README pictures to `gallery` when given)."""
    cfg = prepare_run(config or CONFIG, out_dir, epochs=epochs, seed=seed)
    started = time.perf_counter()
    with torch_threads(cfg.threads):
        torch.manual_seed(seed)
        log = print if progress else None
        mapping, synthesis, record = fit_stylish(cfg, seed, log=log, checkpoint=checkpoint)
    with torch_threads(1):
        return _finish(out_dir, mapping, synthesis, record, cfg, seed, started, gallery)


def _finish(out_dir: Path, mapping: Mapping, synthesis: Synthesis, record: TrainLog,
            cfg: StylishConfig, seed: int, started: float, gallery: Path | None) -> Bundle:
    shapes = [list(s) for s in synthesis.noise_shapes()]
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-") as tmp:
        root = Path(tmp)
        metrics = _export(mapping, synthesis, root, seed)
        gen = WPlusOnnx(root / "mapping.onnx", root / "decoder.onnx", shapes, NUM_WS)
        center = mean_of_mapping(root / "mapping.onnx", "z", "w", LATENT_DIM)
        found = fit_directions(gen, seed)
        fit, fit_notes = fit_metrics(found)
        metrics |= fit
        notes = dict(fit_notes) | _fidelity(gen, metrics)
        evaluation = evaluate_layers(
            gen.decode, gen.broadcast(gen.map(seed_latents(EDIT_SEEDS, LATENT_DIM))),
            [LayerDirection(d.name, d.vector, d.sigma, d.layers or (0, NUM_WS),
                            d.name in GEOMETRY) for d in found],
            rows=gen.broadcast(gen.map(seed_latents(MIX_ROWS, LATENT_DIM))),
            cols=gen.broadcast(gen.map(seed_latents(MIX_COLS, LATENT_DIM))), fine=FINE)
        metrics |= evaluation.metrics
        notes |= evaluation.notes
        for name, q in evaluation.quality.items():
            metrics |= {f"direction.{name}.spearman_within": q.spearman_within,
                        f"direction.{name}.spearman_pooled": q.spearman_pooled,
                        f"direction.{name}.leak_plain": q.leak_plain,
                        f"direction.{name}.leak_conditional": q.leak_conditional}
        if gallery is not None:
            draw_pictures(gen, found, center, gallery)
        preview = gen.sample(sample_latents(seed + 1, 32, LATENT_DIM))
        spec = _spec(found, evaluation.quality, center, shapes, metrics, notes, record, cfg,
                     seed, started)
        return write_bundle(out_dir, spec, decoder=root / "decoder.onnx",
                            mapping=root / "mapping.onnx", directions=as_arrays(found),
                            preview_png=rgb_grid_png(preview, cols=8))


def _export(mapping: Mapping, synthesis: Synthesis, root: Path, seed: int) -> dict[str, float]:
    """mapping.onnx (z → w) and decoder.onnx (ws + noise0…8 → x); torch ↔ ORT parity."""
    z = torch.from_numpy(sample_latents(seed + 5, 64, LATENT_DIM))
    with torch.no_grad():
        ws = mapping(z)[:, None].expand(-1, NUM_WS, -1).contiguous()
    noise = synthesis.noise_like(len(z), generator=torch.Generator().manual_seed(seed))
    names = noise_names(len(noise))
    export_onnx(mapping, (z[:2],), root / "mapping.onnx", input_names=["z"], output_names=["w"])
    export_onnx(synthesis, (ws[:2], *(n[:2] for n in noise)), root / "decoder.onnx",
                input_names=["ws", *names], output_names=["x"])
    feeds = {"ws": ws.numpy()} | {k: n.numpy() for k, n in zip(names, noise, strict=True)}
    parity = max(onnx_parity(mapping, root / "mapping.onnx", {"z": z.numpy()}),
                 onnx_parity(synthesis, root / "decoder.onnx", feeds))
    return {"onnx_parity_max_abs_diff": parity}


def fit_directions(gen: WPlusOnnx, seed: int) -> list[Discovered]:
    """InterFaceGAN in W: per factor, the normal of a ridge regression from mapped prior draws
    w to the factor's normal score; σ = the spread of those W codes along it; default layers
    coarse for geometry, fine for appearance."""
    z = sample_latents(DIRECTION_SEED, DIRECTION_SAMPLES, LATENT_DIM)
    w = gen.map(z)
    scores = scores_of(z)
    found = supervised(w, {f: scores[:, i] for i, f in enumerate(FACTORS)}, seed=seed,
                       penalty=1.0, what="mapped prior draws", meaning=MEANING)
    out = []
    for d in found:
        layers = COARSE if d.name in GEOMETRY else FINE
        unit = (f"1.0 = 1 σ of mapped W codes along the direction (W distance {d.sigma:.4g}); "
                f"positive = {MEANING[d.name]}; default layers [{layers[0]}, {layers[1]})")
        out.append(replace(d, unit=unit, factor=d.name, layers=layers))
    return out


def _fidelity(gen: WPlusOnnx, metrics: dict[str, float]) -> dict[str, str]:
    """How closely samples and style mixes draw the data set: MSE against the exact renders."""
    z = sample_latents(0, FIDELITY_SAMPLES, LATENT_DIM)
    metrics["render_mse"] = float(((gen.sample(z) - render_latents(z)) ** 2).mean())
    half = FIDELITY_SAMPLES // 2
    ws = gen.broadcast(gen.map(z))
    mixed = mix_ws(ws[:16], ws[half:half + 16], FINE)
    f = factors_of(z)
    expected = render(mixed_values(np.repeat(f[:16], 16, axis=0), np.tile(f[half:half + 16],
                                                                          (16, 1))))
    metrics["mix_render_mse"] = float(((gen.decode(mixed) - expected) ** 2).mean())
    return {
        "render_mse": f"mean squared error (pixels in [0, 1]) of {FIDELITY_SAMPLES} samples "
        "(Sample seed 0, ψ = 1, const noise) against the exact renders of the same z",
        "mix_render_mse": f"the same for 16 × 16 style mixes (layers [{FINE[0]}, {FINE[1]}) "
        "from the column) against renders with the row's geometry and the column's appearance",
    }


def _spec(found: list[Discovered], quality: dict[str, Any], center: F32,
          shapes: list[list[int]], metrics: dict[str, float], notes: dict[str, str],
          record: TrainLog, cfg: StylishConfig, seed: int, started: float) -> BundleSpec:
    directions = []
    for d in found:
        entry = d.spec().model_dump(mode="json")
        entry["quality"] = quality[d.name].model_dump(mode="json")
        directions.append(entry)
    raw = {
        "schema_version": 1,
        "name": NAME,
        "description": INTRO + "; edit " + ", ".join(
            d.name for d in found if quality[d.name].reliable) + " (each measured on images)",
        "latent_dim": LATENT_DIM,
        "output": {"shape": [3, 64, 64], "range": list(OUTPUT_RANGE)},
        "mapping": {"file": "mapping.onnx", "input": "z", "output": "w", "w_dim": W_DIM,
                    "num_ws": NUM_WS},
        "editing_space": "w",
        "decoder": {"file": "decoder.onnx", "input": "ws", "output": "x",
                    "noise_inputs": [{"name": n, "shape": s}
                                     for n, s in zip(noise_names(len(shapes)), shapes,
                                                     strict=True)],
                    "noise_default": "const"},
        "max_batch_size": 256,
        "directions": directions,
        "truncation_center": [float(v) for v in center],
        "metrics": {k: float(f"{v:.6g}") for k, v in sorted(metrics.items())},
        "metric_notes": notes,
        "provenance": provenance(
            dataset=DATASET_TEXT, seed=seed, epochs=cfg.epochs, train_seconds=record.seconds,
            total_seconds=round(time.perf_counter() - started, 1), steps=cfg.steps,
            torch_threads=cfg.threads,
            batch_size=cfg.batch_size, mix_prob=cfg.mix_prob, crossover=cfg.crossover,
            objective="squared error (object pixels ×5) against renders of the prior; a "
            f"{cfg.mix_prob:.0%} share of each batch style-mixed at layer {cfg.crossover} with "
            "the mixed render (row geometry, column appearance) as the target; no "
            "discriminator"),
    }
    return BundleSpec.parse(raw, source=f"{NAME} spec")
