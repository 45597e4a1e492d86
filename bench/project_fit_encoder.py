"""fit-encoder on an ONNX-only bundle of the PyTorch DCGAN tutorial generator (random weights,
ngf 8, z[100] → 64×64 RGB): what the fitted encoder reconstructs, and what Project adds.

    .venv/bin/python -m bench.project_fit_encoder --steps 400

Writes `bench/results/project_fit_encoder.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.scenarios.project import _quality
from latentserve.core import seeding
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.training.encoder_fit import FitOptions, fit_encoder
from latentserve.service.backends.embedded import EmbeddedBackend
from latentserve.service.models.lease import Lease, ServedVersion
from latentserve.service.projection import Plan, Projection
from latentserve.service.projection_loss import unit_range
from latentserve.service.settings import Settings
from tests.fixtures import foreign_generators as fg

OUT = Path(__file__).resolve().parent / "results" / "project_fit_encoder.json"


async def _project(root: Path, n: int, steps: int) -> dict[str, Any]:
    from latentserve.registry.bundle.files import load_bundle

    bundle = load_bundle(root)
    backend = EmbeddedBackend(bundle, Settings.model_validate({}))
    await backend.load()
    lease = Lease(ServedVersion("dcgan", 1, bundle, backend), "production")
    z = seeding.sample_latents(4242, n, 100)
    targets = await backend.decode(z)
    enc = await backend.decode(await backend.encode(targets))
    final = None
    started = time.perf_counter()
    async for snap in Projection(lease, targets, None, Plan(steps=steps)).run():
        final = snap
    seconds = (time.perf_counter() - started) / n
    assert final is not None and final.images is not None
    await backend.unload()
    t, e, p = (unit_range(x, (-1.0, 1.0)) for x in (targets, enc, final.images))
    (ep, es), (pp, ps) = _quality(e, t), _quality(p, t)
    return {"images": n, "steps": steps, "decodes_per_image": final.decodes // n,
            "encoder_psnr": ep, "encoder_ssim": es, "project_psnr": pp, "project_ssim": ps,
            "project_seconds_per_image": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--project-steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        onnx_path = fg.export_dcgan(root / "dcgan.onnx", ngf=8)
        bundle = build_bundle(root / "bundle", BundleOptions("dcgan", (-1.0, 1.0)),
                              {"decoder": onnx_path})
        report = fit_encoder(bundle.root, FitOptions(steps=args.steps, batch=32, width=16,
                                                     eval_samples=128))
        metrics = {k: v for k, v in report.bundle.spec.metrics.items()
                   if k.startswith("encoder_")}
        projected = asyncio.run(_project(bundle.root, args.images, args.project_steps))
    doc = {"fit_steps": args.steps, "bundle_metrics": metrics, "project": projected}
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
