"""Project benchmark: quality against a torch gradient reference, the encoder alone, the loss
choice, time per projection and what a running projection costs other requests.

Run from the repository root (CPU; about 20 minutes at the defaults)::

    .venv/bin/python -m bench.scenarios.project --images 100 --decodes 480

Writes `bench/results/project.json` (flat `project.*` keys plus the tables) and
`bench/PROJECT.md`. Quality runs `Projection` in-process on the embedded backend (the
service's code path without gRPC); timing and the concurrent Sample p99 go through a real
gRPC server. Images are compared in [0, 1] (decodes mapped from the bundle's output range).
For a model without encoder (stylish-shapes) the "encoder" column is Project's own start, the
best of PRIOR_SAMPLES mapped prior samples per target by the projection loss, and the
reference starts, like the StyleGAN2-ADA projector, from w̄ on every layer with its noise
scaled by the per-coordinate std of W.

`--reference-budgets 1,5,10` also runs the reference alone with 1×, 5× and 10× the decodes on
a few never-produced targets: where its PSNR stops rising, no search in the latent can fit
those pictures better::

    .venv/bin/python -m bench.scenarios.project --models shapes3d --skip quality,loss,service \
        --reference-budgets 1,5,10 --budget-images 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.project_data import never_produced, never_produced_parts
from bench.project_reference import ZOO, BroadcastW, adam_projection, torch_decoder
from latentserve.core import seeding
from latentserve.core.arrays import F32, I64
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service import projection_loss as pl
from latentserve.service import projection_polish
from latentserve.service.backends.embedded import EmbeddedBackend
from latentserve.service.models.lease import Lease, ServedVersion
from latentserve.service.projection import (
    PRIOR_SAMPLES,
    Plan,
    Projection,
    points_of,
    population_size,
    rows_of,
    search_dim,
)
from latentserve.service.settings import Settings

MODELS = ("sprites-vae", "shapes3d", "digits-cvae", "stylish-shapes")
W_SAMPLES = 10_000
"""Mapped prior samples (seed W_SEED) whose mean w̄ starts the reference of a model without
encoder and whose per-coordinate std scales its latent noise."""
W_SEED = 90_002
CHUNK = 16
OUT = Path(__file__).resolve().parents[1] / "results" / "project.json"
REPORT = Path(__file__).resolve().parents[1] / "PROJECT.md"


PSNR_CAP = 60.0
"""PSNR per image is capped here (MSE 1e-6: an exact match) before averaging; exact matches of
generated targets otherwise reach float32 noise (≈ 110 dB) and swamp the mean."""


def _quality(images: F32, targets: F32) -> tuple[float, float]:
    psnr = np.minimum(pl.psnr(images, targets), PSNR_CAP)
    return float(np.mean(psnr)), float(np.mean(pl.ssim(images, targets)))


def _psnr_by_part(methods: dict[str, F32], targets: F32,
                  parts: dict[str, slice]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Mean PSNR of each method's reconstructions over each part of a mixed target set."""
    return {part: {method: _quality(images[at], targets[at])[0]
                   for method, images in methods.items()}
            for part, at in parts.items()}  # fmt: skip


async def _lease(model: str) -> Lease:
    bundle = load_bundle(ZOO / model)
    backend = EmbeddedBackend(bundle, Settings.model_validate({}))
    await backend.load()
    return Lease(ServedVersion(model, 1, bundle, backend), "production")


async def _project(lease: Lease, targets: F32, labels: I64 | None,
                   plan: Plan) -> tuple[F32, F32, int, float]:
    """Projection of every target (model range) in chunks of CHUNK: latents, images (model
    range), decodes/image, s/image."""
    zs, ims, decodes = [], [], 0
    started = time.perf_counter()
    for lo in range(0, len(targets), CHUNK):
        chunk = None if labels is None else labels[lo:lo + CHUNK]
        run = Projection(lease, targets[lo:lo + CHUNK], chunk, plan)
        async for snap in run.run():
            if snap.done:
                assert snap.images is not None
                zs.append(snap.latents)
                ims.append(snap.images)
        decodes += run.decodes
    seconds = (time.perf_counter() - started) / len(targets)
    return np.concatenate(zs), np.concatenate(ims), decodes // len(targets), seconds


def steps_for(dim: int, population: int, decodes: int) -> int:
    """The most steps whose projection of one image (true label) decodes at most `decodes`
    rows: the start, CMA-ES generations, the final mean and the polish steps (dim + 1 each)."""
    pop = population_size(dim, population)
    steps = 1
    while True:
        nxt = steps + 1
        polish = int(nxt * projection_polish.SHARE) if dim <= projection_polish.MAX_DIM else 0
        if 2 + (nxt - polish) * pop + polish * (dim + 1) > decodes:
            return steps
        steps = nxt


def _unit(spec: BundleSpec, images: F32) -> F32:
    """Decoded images (the bundle's output range) in [0, 1]: unchanged for [0, 1] models."""
    return pl.unit_range(images, spec.output.range)


def _model_range(spec: BundleSpec, images: F32) -> F32:
    """Images in [0, 1] mapped to the bundle's output range, as Project takes targets."""
    lo, hi = spec.output.range
    return (images * np.float32(hi - lo) + np.float32(lo)).astype(np.float32, copy=False)


def _given(spec: BundleSpec, labels: I64) -> I64 | None:
    """The labels the service gets: none for an unconditional model."""
    return labels if spec.condition is not None else None


def _start_text(spec: BundleSpec) -> str:
    """What the "encoder" column of `spec`'s rows holds."""
    if spec.encoder is not None:
        return "encoder's latent"
    return (f"no encoder: Project's start (best of {PRIOR_SAMPLES} mapped prior samples per "
            "target by the projection loss)")


async def _w_prior(lease: Lease) -> tuple[F32, F32]:
    """w̄ (the mean of W_SAMPLES mapped prior samples) and W's per-coordinate std: the
    StyleGAN2-ADA projector's start and latent-noise scale, for a model without encoder."""
    spec = lease.bundle.spec
    z = seeding.sample_latents(W_SEED, W_SAMPLES, spec.latent_dim)
    step = 4 * spec.max_batch_size  # in turn: the batcher's queue holds a few batches
    rows = np.concatenate([await lease.backend.to_editing_space(z[lo:lo + step])
                           for lo in range(0, len(z), step)]).astype(np.float64)
    w = rows.reshape(len(rows), -1, spec.editing_dim)[:, 0]  # one w on every W+ layer
    return w.mean(axis=0).astype(np.float32), w.std(axis=0).astype(np.float32)


async def _starts(lease: Lease, targets: F32, labels: I64, population: int,
                  w_prior: tuple[F32, F32] | None) -> tuple[F32, F32, float | F32]:
    """The "encoder" column's images ([0, 1]), the reference's start (searched points) and the
    spread its noise is measured in: the encoder's latent and the prior's scale 1 when the
    bundle has an encoder; else Project's own start and w̄ with W's per-coordinate std."""
    spec, backend = lease.bundle.spec, lease.backend
    given = _given(spec, labels)
    if w_prior is None:
        z_enc = await backend.encode(targets, given)
        start = points_of(z_enc, spec.row_dim // search_dim(spec))
        return _unit(spec, await backend.decode(z_enc, given)), start, 1.0
    first = Plan(steps=0, population=population)
    _, images, _, _ = await _project(lease, _model_range(spec, targets), given, first)
    w_avg, w_std = w_prior
    return _unit(spec, images), np.repeat(w_avg[None], len(targets), axis=0), w_std


def _reference_decoder(model: str, spec: BundleSpec) -> tuple[nn.Module, int]:
    """The torch decoder the reference optimises, and the W+ layers each of its latents fills:
    a W+ model searched in W (`search_dim`) takes one w per image, like Project's search and
    the StyleGAN2-ADA projector."""
    decoder = torch_decoder(model)
    layers = spec.row_dim // search_dim(spec)
    return (BroadcastW(decoder, layers) if layers > 1 else decoder), layers


def _labels(rng: np.random.Generator, spec: BundleSpec, n: int) -> I64:
    """Labels of the generated targets: uniform classes, zeros for an unconditional model."""
    if spec.condition is None:
        return np.zeros(n, np.int64)
    return rng.integers(0, spec.num_classes, n).astype(np.int64)


async def quality(model: str, n: int, decodes: int, population: int) -> dict[str, Any]:
    """Rows of the quality table for (a) generated and (b) never-produced targets."""
    lease = await _lease(model)
    spec, backend = lease.bundle.spec, lease.backend
    steps = steps_for(search_dim(spec), population, decodes)
    decoder, layers = _reference_decoder(model, spec)
    w_prior = None if spec.encoder is not None else await _w_prior(lease)
    rng = np.random.default_rng(2024)
    z_true = seeding.sample_latents(90_001, n, spec.latent_dim)
    gen_labels = _labels(rng, spec, n)
    generated = _unit(spec, await backend.decode(await backend.to_editing_space(z_true),
                                                 _given(spec, gen_labels)))
    other, other_labels, what = never_produced(model, n, seed=5)
    sets = {"generated": (generated, gen_labels, f"{n} decodes of held-out prior samples"),
            "never_produced": (other.astype(np.float32), other_labels, what)}
    rows: dict[str, Any] = {}
    for name, (targets, labels, described) in sets.items():
        given = _given(spec, labels)
        enc_images, z0, spread = await _starts(lease, targets, labels, population, w_prior)
        plan = Plan(steps=steps, population=population)
        _, proj_images, spent, seconds = await _project(lease, _model_range(spec, targets),
                                                        given, plan)
        started = time.perf_counter()
        w_ref = await asyncio.to_thread(adam_projection, decoder, targets, labels,
                                        z0, steps=spent, spread=spread,
                                        value_range=spec.output.range)
        ref_seconds = (time.perf_counter() - started) / len(targets)
        z_ref = rows_of(w_ref, layers)
        ref_images = _unit(spec, await backend.decode(z_ref, given))
        methods = {"encoder": enc_images, "project": _unit(spec, proj_images),
                   "reference": ref_images}
        enc_q, proj_q, ref_q = (_quality(x, targets) for x in methods.values())
        rows[name] = {
            "targets": described, "start": _start_text(spec),
            "decodes_per_image": spent, "steps": steps,
            "encoder_psnr": enc_q[0], "encoder_ssim": enc_q[1],
            "project_psnr": proj_q[0], "project_ssim": proj_q[1],
            "reference_psnr": ref_q[0], "reference_ssim": ref_q[1],
            "project_vs_reference_psnr": proj_q[0] / ref_q[0],
            "project_minus_encoder_psnr_db": proj_q[0] - enc_q[0],
            "project_seconds_per_image": seconds, "reference_seconds_per_image": ref_seconds,
        }
        parts = never_produced_parts(model, n) if name == "never_produced" else {}
        if parts:
            rows[name]["psnr_by_part"] = _psnr_by_part(methods, targets, parts)
        print(model, name, json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                       for k, v in rows[name].items()}), flush=True)
    await lease.backend.unload()
    return rows


async def reference_budgets(model: str, n: int, decodes: int,
                            multiples: list[int]) -> dict[str, Any]:  # fmt: skip
    """The gradient reference on `n` never-produced targets with `multiples` × `decodes`
    steps: how far above the encoder the best fit a latent gives lies, whatever the budget."""
    lease = await _lease(model)
    spec, backend = lease.bundle.spec, lease.backend
    decoder, layers = _reference_decoder(model, spec)
    w_prior = None if spec.encoder is not None else await _w_prior(lease)
    targets, labels, what = never_produced(model, n, seed=5)
    targets = targets.astype(np.float32)
    given = _given(spec, labels)
    enc_images, z0, spread = await _starts(lease, targets, labels, 0, w_prior)
    parts = never_produced_parts(model, n) or {"all": slice(0, n)}
    start = _psnr_by_part({"encoder": enc_images}, targets, parts)
    out: dict[str, Any] = {"targets": what, "encoder_psnr": _quality(enc_images, targets)[0],
                           "steps": {}}  # fmt: skip
    for steps in (m * decodes for m in multiples):
        w = await asyncio.to_thread(adam_projection, decoder, targets, labels, z0, steps=steps,
                                    spread=spread, value_range=spec.output.range)
        images = _unit(spec, await backend.decode(rows_of(w, layers), given))
        psnr = _quality(images, targets)[0]
        got = _psnr_by_part({"reference": images}, targets, parts)
        out["steps"][str(steps)] = {
            "psnr": psnr, "minus_encoder_db": psnr - out["encoder_psnr"],
            "minus_encoder_db_by_part": {part: got[part]["reference"] - start[part]["encoder"]
                                         for part in parts},
        }  # fmt: skip
        print(model, "reference steps", steps, json.dumps(out["steps"][str(steps)]), flush=True)
    await lease.backend.unload()
    return out


async def loss_choice(model: str, n: int, decodes: int, population: int) -> dict[str, Any]:
    """Project the never-produced set with λ = 0 (MSE only), the default and a larger λ."""
    lease = await _lease(model)
    spec = lease.bundle.spec
    steps = steps_for(search_dim(spec), population, decodes)
    targets, labels, _ = never_produced(model, n, seed=11)
    out: dict[str, Any] = {}
    for weight in (0.0, pl.STRUCTURE_WEIGHT, 0.2):
        plan = Plan(steps=steps, population=population, structure_weight=weight)
        _, images, _, _ = await _project(lease, _model_range(spec, targets.astype(np.float32)),
                                         _given(spec, labels), plan)
        psnr, ssim = _quality(_unit(spec, images), targets)
        out[f"{weight:g}"] = {"psnr": psnr, "ssim": ssim}
        print(model, "loss λ", weight, round(psnr, 2), round(ssim, 4), flush=True)
    await lease.backend.unload()
    return out


def service_timing(model: str, steps: int, samplers: int, seconds: float) -> dict[str, Any]:
    """Through a real server: one projection's wall time, and Sample p50/p99 from `samplers`
    closed loops alone and while projections run back to back."""
    from latentserve.client import Client
    from latentserve.registry.store.mlflow_store import RegistryClient, register_bundle
    from latentserve.service.devtools.background import BackgroundServer

    work = Path(tempfile.mkdtemp(prefix="bench-project-"))
    try:
        uri = f"sqlite:///{work / 'mlflow.db'}"
        RegistryClient(uri, create=True).list_models()
        register_bundle(uri, ZOO / model, model, alias="production")
        settings = Settings.model_validate({
            "port": 0, "metrics_port": 0, "registry_uri": uri, "default_model": model,
            "cache_dir": work / "cache", "registry_poll_s": 3600.0, "log_level": "WARNING",
            "response_cache_bytes": 0})
        with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=300) as client:
            target = client.sample(model, n=1, seed=77, class_labels=[1]).images
            assert target is not None
            client.project(model, target, class_labels=[1], steps=2)  # warm
            timings = []
            for seed in range(3):
                started = time.perf_counter()
                result = client.project(model, target, class_labels=[1], steps=steps,
                                        seed=seed)
                timings.append(time.perf_counter() - started)
            alone = asyncio.run(_sample_loop(bg.address, model, samplers, seconds, False))
            during = asyncio.run(_sample_loop(bg.address, model, samplers, seconds, True,
                                              target))
        return {"project_seconds": statistics.median(timings), "steps": steps,
                "decodes": result.decodes, "psnr": float(result.psnr[0]),  # type: ignore[index]
                "sample_alone": alone, "sample_during_projection": during,
                "samplers": samplers}
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _sample_loop(address: str, model: str, samplers: int, seconds: float,
                       projecting: bool, target: Any = None) -> dict[str, float]:
    from latentserve.client import AsyncClient

    latencies: list[float] = []
    async with AsyncClient(address, timeout_s=300) as client:
        stop = time.monotonic() + seconds

        async def sampler(k: int) -> None:
            i = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                await client.sample(model, n=1, seed=k * 100_000 + i, class_labels=[0])
                latencies.append(time.perf_counter() - started)
                i += 1

        async def projector() -> int:
            done = 0
            while time.monotonic() < stop:
                await client.project(model, target, class_labels=[1], steps=1000,
                                     search_timeout_s=max(0.1, stop - time.monotonic()))
                done += 1
            return done

        tasks: list[Coroutine[Any, Any, Any]] = [sampler(k) for k in range(samplers)]
        if projecting:
            tasks.append(projector())
        await asyncio.gather(*tasks)
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


START_MARK = "†"
"""Marks an "encoder" cell that holds Project's start (a model without encoder)."""


def _report(doc: dict[str, Any]) -> str:
    lines = ["# Project benchmark", "",
             f"Machine: {doc['machine']}. Settings: {doc['settings']}.", "",
             "PSNR (dB, capped at 60 per image) / SSIM of reconstructions in [0, 1], mean "
             "over the targets; reference = torch "
             "Adam on the latent (StyleGAN2-ADA projector schedule) from the encoder's latent, "
             "one decoder evaluation per step, as many steps as Project spent decodes per "
             "image. Labels are the true ones for every method (none for an unconditional "
             "model).", "",
             f"{START_MARK} No encoder: the encoder column is Project's own start, "
             f"the best of {PRIOR_SAMPLES} mapped prior samples per target by the projection "
             "loss. A W+ model whose mapping gives one w is searched in W by both methods, "
             "one w on every layer; the reference starts, as the StyleGAN2-ADA projector does, "
             f"from w̄ (mean of {W_SAMPLES:,} mapped prior samples), its latent noise scaled "
             "by W's per-coordinate std; both decode with the bundle's default noise.", "",
             "| model | targets | encoder | Project | reference | Project / ref PSNR | "
             "Project − encoder (dB) | decodes/image | s/image (Project, batched 16) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, sets in doc["quality"].items():
        for name, r in sets.items():
            mark = "" if r.get("start", "encoder").startswith("encoder") else f"{START_MARK} "
            lines.append(
                f"| {model} | {name}: {r['targets']} | {mark}{r['encoder_psnr']:.2f} / "
                f"{r['encoder_ssim']:.3f} | {r['project_psnr']:.2f} / {r['project_ssim']:.3f} "
                f"| {r['reference_psnr']:.2f} / {r['reference_ssim']:.3f} | "
                f"{100 * r['project_vs_reference_psnr']:.1f} % | "
                f"{r['project_minus_encoder_psnr_db']:+.2f} | {r['decodes_per_image']} | "
                f"{r['project_seconds_per_image']:.2f} |")
    parts = [f"- {model}, never_produced, {part} only: encoder {r['encoder']:.2f}, Project "
             f"{r['project']:.2f} ({r['project'] - r['encoder']:+.2f} dB), reference "
             f"{r['reference']:.2f} dB PSNR"
             for model, sets in doc["quality"].items()
             for part, r in sets.get("never_produced", {}).get("psnr_by_part", {}).items()]
    if parts:
        lines += ["", "Mixed sets by part:", "", *parts]
    for model, r in doc.get("reference_budgets", {}).items():
        steps = ", ".join(
            f"{int(k):,} steps {v['minus_encoder_db']:+.2f} dB ("
            + ", ".join(f"{p} {d:+.2f}" for p, d in v["minus_encoder_db_by_part"].items()) + ")"
            for k, v in r["steps"].items())
        lines += ["", f"The reference with more decodes ({model}, never_produced: {r['targets']}; "
                  f"encoder {r['encoder_psnr']:.2f} dB), PSNR over the encoder: {steps}."]
    runs = doc.get("runs", {})
    if runs:
        lines += ["", "Runs: " + "; ".join(f"{m}: {r}" for m, r in sorted(runs.items())) + "."]
    if doc.get("loss_choice"):
        lines += ["", "Loss choice (never-produced targets, same budget): PSNR / SSIM", "",
                  "| model | λ = 0 (MSE only) | λ = 0.05 (default) | λ = 0.2 |",
                  "|---|---|---|---|"]
        for model, rows in doc["loss_choice"].items():
            cells = [f"{rows[k]['psnr']:.2f} / {rows[k]['ssim']:.3f}" for k in rows]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if doc.get("service"):
        s = doc["service"]
        lines += ["", f"Through gRPC ({s['model']}, one image, {s['steps']} steps, "
                  f"{s['decodes']} decodes): {s['project_seconds']:.2f} s per projection "
                  f"(median of 3). Sample (n = 1) from {s['samplers']} closed loops: alone "
                  f"p50 {s['sample_alone']['p50_ms']:.1f} ms, p99 "
                  f"{s['sample_alone']['p99_ms']:.1f} ms; during back-to-back projections "
                  f"p50 {s['sample_during_projection']['p50_ms']:.1f} ms, p99 "
                  f"{s['sample_during_projection']['p99_ms']:.1f} ms."]
    lines += _side_reports()
    return "\n".join(lines) + "\n"


def _side_reports() -> list[str]:
    """Tables of bench/project_sprites.py and bench/project_fit_encoder.py, when run."""
    lines: list[str] = []
    sprites = OUT.with_name("project_sprites.json")
    if sprites.exists():
        doc = json.loads(sprites.read_text())
        lines += ["", f"Sprites drawn by another routine (PIL polygons, parametric heart; "
                  f"{doc['per_shape']} per shape for the encoder, the first "
                  f"{doc.get('project_per_shape', doc['per_shape'])} of them for Project; "
                  f"`bench/project_sprites.py`): class = best "
                  f"reconstruction over labels; orientation error within one symmetry period "
                  f"(Project: {doc['project_steps']} steps, label picked by Project).", "",
                  "| shape | encoder class | Project class | encoder orientation error "
                  "(mean, ≤ 10°) | Project orientation error (mean, ≤ 10°) |",
                  "|---|---|---|---|---|"]
        for name, r in doc["shapes"].items():
            lines.append(
                f"| {name} | {100 * r['encoder_class_accuracy']:.0f} % | "
                f"{100 * r['project_class_accuracy']:.0f} % | "
                f"{r['encoder_orientation_error_deg_mean']:.1f}°, "
                f"{100 * r['encoder_orientation_within_10deg']:.0f} % | "
                f"{r['project_orientation_error_deg_mean']:.1f}°, "
                f"{100 * r['project_orientation_within_10deg']:.0f} % |")
    fitted = OUT.with_name("project_fit_encoder.json")
    if fitted.exists():
        doc = json.loads(fitted.read_text())
        m, p = doc["bundle_metrics"], doc["project"]
        lines += ["", f"fit-encoder on the DCGAN tutorial generator (random weights, ngf 8, "
                  f"ONNX only; {doc['fit_steps']} steps of 32 pairs; "
                  f"`bench/project_fit_encoder.py`): Encode → Decode PSNR "
                  f"{m['encoder_fit_psnr_db']:.2f} dB, latent MSE "
                  f"{m['encoder_fit_latent_mse']:.3f} prior σ² (≈ 1: the short schedule has "
                  f"not learnt the latent), parity {m['encoder_onnx_parity_max_abs_diff']:.2g}, "
                  f"{m['encoder_fit_seconds']:.0f} s. Project from it ({p['steps']} steps, "
                  f"{p['images']} generated images): {p['encoder_psnr']:.2f} → "
                  f"{p['project_psnr']:.2f} dB PSNR, SSIM {p['encoder_ssim']:.3f} → "
                  f"{p['project_ssim']:.3f}."]
    return lines


def _flat(doc: dict[str, Any]) -> dict[str, float]:
    keys: dict[str, float] = {}
    for model, sets in doc["quality"].items():
        for name, r in sets.items():
            for k, v in r.items():
                if isinstance(v, int | float):
                    keys[f"project.{model}.{name}.{k}"] = v
    if doc.get("service"):
        s = doc["service"]
        keys["project.service.seconds_per_projection"] = s["project_seconds"]
        keys["project.service.sample_p99_ms_alone"] = s["sample_alone"]["p99_ms"]
        keys["project.service.sample_p99_ms_during_projection"] = (
            s["sample_during_projection"]["p99_ms"])
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--decodes", type=int, default=480,
                        help="decode budget per image (steps follow from it per model)")
    parser.add_argument("--steps", type=int, default=30, help="steps of the gRPC timing")
    parser.add_argument("--population", type=int, default=0, help="0: Project's default")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--loss-images", type=int, default=32)
    parser.add_argument("--service-seconds", type=float, default=20.0)
    parser.add_argument("--skip", default="", help="comma list of: quality,loss,service")
    parser.add_argument("--reference-budgets", default="", metavar="K,K,…",
                        help="also run the reference alone with K × --decodes steps on "
                             "--budget-images never-produced targets of each model")
    parser.add_argument("--budget-images", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    skip = set(args.skip.split(","))
    models = [m for m in args.models.split(",") if m]
    doc: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core VM",
        "settings": f"{args.images} images per set, about {args.decodes} decodes per image "
                    f"(steps per model follow), population "
                    f"{args.population or 'by latent size'}, λ = {pl.STRUCTURE_WEIGHT}",
        "quality": {}, "loss_choice": {}, "runs": {}, "reference_budgets": {}}
    if "quality" not in skip:
        for model in models:
            doc["quality"][model] = asyncio.run(quality(model, args.images, args.decodes,
                                                        args.population))
            doc["runs"][model] = f"{time.strftime('%Y-%m-%d')}, {doc['settings']}"
            _save(doc)
    multiples = [int(k) for k in args.reference_budgets.split(",") if k]
    if multiples:
        for model in models:
            doc["reference_budgets"][model] = asyncio.run(reference_budgets(
                model, args.budget_images, args.decodes, multiples))
            _save(doc)
    if "loss" not in skip:
        for model in ("sprites-vae", "digits-cvae"):
            doc["loss_choice"][model] = asyncio.run(loss_choice(
                model, args.loss_images, args.decodes, args.population))
            _save(doc)
    if "service" not in skip:
        doc["service"] = {"model": "sprites-vae", **service_timing(
            "sprites-vae", args.steps, 4, args.service_seconds)}
    print(_save(doc))


def _save(doc: dict[str, Any]) -> str:
    """Merge `doc` into the results file (sections of earlier runs are kept) and rewrite the
    report; returns the report."""
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    sections = ("quality", "loss_choice", "runs", "reference_budgets")
    merged = {**previous, **{k: v for k, v in doc.items() if k not in sections}}
    for key in sections:
        merged[key] = {**previous.get(key, {}), **doc.get(key, {})}
    merged["keys"] = _flat(merged)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(merged, indent=2) + "\n")
    report = _report(merged)
    REPORT.write_text(report)
    return report

if __name__ == "__main__":
    main()
