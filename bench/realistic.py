"""The realistic decoder under test: the DCGAN-tutorial generator, exported once and cached,
then made into a bundle with the project's public builder as a user's model would be.

The ONNX file comes from `bench.realistic_export` (torch, in a subprocess) and is cached under
`.latentserve/bench-cache/dcgan-<key>/` keyed by a hash of the exporter's source and the torch
version, so reruns skip the export. The bundle is built every run into the scratch folder by
`latentserve.registry.bundle.builder.build_bundle` (the `latentserve bundle create` path), which
flattens the generator's z [B, 100, 1, 1] input to [B, 100]. Example::

    chosen = realistic_model(cfg)            # ChosenModel, source "realistic"
    chosen.bundle.spec.latent_dim            # 100
    export_facts(chosen)                     # parameters, parity, cache key, cache hit
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.config import BENCH_CACHE, REPO_ROOT, RunConfig
from bench.models import ChosenModel
from latentserve.registry.bundle.builder import BundleOptions, build_bundle

NAME = "dcgan-64"
EXPORTER = Path(__file__).with_name("realistic_export.py")
MAX_BATCH_SIZE = 64
"""The largest batch the service sends the decoder (the bench's biggest request is n=64)."""
EXPORT_TIMEOUT_S = 600


def cache_key() -> str:
    """A hash of what decides the exported file: the exporter's source (architecture, seed,
    export settings) and the torch version."""
    digest = hashlib.sha256(EXPORTER.read_bytes())
    digest.update(metadata.version("torch").encode())
    return digest.hexdigest()[:16]


def exported_decoder(cache: Path = BENCH_CACHE) -> tuple[Path, dict[str, Any]]:
    """The cached ONNX file and its export facts (exporting first when the cache lacks them).

    The export writes into a fresh folder renamed into place, so an interrupted run never
    leaves a half-written file behind."""
    key = cache_key()
    folder = cache / f"dcgan-{key}"
    onnx_path, facts_path = folder / "decoder.onnx", folder / "decoder.json"
    hit = onnx_path.is_file() and facts_path.is_file()
    if not hit:
        scratch = cache / f".dcgan-{key}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "bench.realistic_export",
                               str(scratch / "decoder.onnx")], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
        if done.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise RuntimeError(f"exporting the DCGAN decoder failed:\n{done.stderr[-3000:]}")
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    facts = json.loads(facts_path.read_text())
    return onnx_path, {**facts, "cache_key": key, "cache_hit": hit, "cache_path": str(onnx_path)}


def realistic_model(cfg: RunConfig) -> ChosenModel:
    """The DCGAN decoder as a bundle (built into `cfg.work_dir/bundles`), with its export facts
    on `ChosenModel.extra`."""
    onnx_path, facts = exported_decoder()
    options = BundleOptions(
        name=NAME, output_range=(-1.0, 1.0), max_batch_size=MAX_BATCH_SIZE,
        description="PyTorch DCGAN-tutorial generator (random weights, seed 0), 64×64 RGB: "
                    "the bench's realistic decoder",
        provenance={"source": "bench/realistic_export.py", "cache_key": facts["cache_key"]})
    bundle = build_bundle(cfg.work_dir / "bundles" / NAME, options, {"decoder": onnx_path})
    return ChosenModel(bundle, "realistic", extra={"export": facts})
