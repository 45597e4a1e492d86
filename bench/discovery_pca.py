"""GANSpace PCA at the DCGAN tutorial's size: `latentserve directions discover --method pca`
on its generator (ngf 64, 3.6 M parameters, random weights), 4,096 prior samples × 8,192
first-layer activations — the randomised SVD it uses against numpy's dense SVD of the same
activations (`--dense`, minutes). Writes `bench/results/discovery_pca.json` and `.md`::

    .venv/bin/python -m bench.discovery_pca --dense
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense", action="store_true", help="also time the dense SVD")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from latentserve.core.seeding import sample_latents
    from latentserve.registry.bundle.builder import BundleOptions, build_bundle
    from latentserve.registry.bundle.onnx_graph import (
        early_activation,
        first_latent_layer,
        with_outputs,
    )
    from latentserve.registry.quality import discovery
    from latentserve.registry.quality.direction_fits import top_components
    from latentserve.registry.quality.onnx_generator import cpu_session
    from tests.fixtures.foreign_generators import export_dcgan

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        path = export_dcgan(Path(scratch) / "dcgan.onnx", ngf=64)
        bundle = build_bundle(Path(scratch) / "dcgan", BundleOptions("dcgan", (-1.0, 1.0)),
                              {"decoder": path})
        start = time.perf_counter()
        found = discovery.pca(bundle, 4)
        total = time.perf_counter() - start
        model = onnx.load(str(bundle.decoder_path))
        layer = early_activation(model, first_latent_layer(model, "z", 100))
        session = cpu_session(with_outputs(model, [layer], only=True))
        z = sample_latents(0, discovery.PCA_SAMPLES, 100)
        start = time.perf_counter()
        acts = np.concatenate([session.run([layer], {"z": z[i:i + 64]})[0].reshape(64, -1)
                               for i in range(0, len(z), 64)]).astype(np.float64)
        activations_s = time.perf_counter() - start
        centred = acts - acts.mean(axis=0)
        total_var = float(np.sum(centred**2))
        start = time.perf_counter()
        values, _ = top_components(centred, 4, rank_hint=100)
        randomised_s = time.perf_counter() - start
        result: dict[str, object] = {
            "model": "DCGAN tutorial generator, ngf 64, random weights",
            "activations": list(acts.shape), "layer": layer,
            "discover_pca_s": round(total, 2), "activations_s": round(activations_s, 2),
            "randomised_svd_s": round(randomised_s, 2),
            "explained_randomised": [round(float(v**2) / total_var, 6) for v in values],
            "scores": [round(d.score, 6) for d in found],
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "load_average_1min": round(os.getloadavg()[0], 1),
        }
        if args.dense:
            start = time.perf_counter()
            _, singular, _ = np.linalg.svd(centred, full_matrices=False)
            result["dense_svd_s"] = round(time.perf_counter() - start, 2)
            result["explained_dense"] = [round(float(v**2) / total_var, 6)
                                         for v in singular[:4]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "discovery_pca.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# GANSpace PCA at the DCGAN's size", "",
             f"{result['model']}; {result['activations'][0]:,} prior samples × "  # type: ignore[index]
             f"{result['activations'][1]:,} activations of `{layer}`; "  # type: ignore[index]
             f"{result['cpus']} CPUs shared with other work (1-minute load average "
             f"{result['load_average_1min']} when it finished: timings scale with it).", "",
             "| step | seconds |", "|---|---|",
             f"| `directions discover --method pca` (whole) | {result['discover_pca_s']} |",
             f"| activations (onnxruntime, graph cut at the layer) | {result['activations_s']} |",
             f"| randomised SVD (top 4) | {result['randomised_svd_s']} |"]
    if "dense_svd_s" in result:
        lines.append(f"| dense SVD (numpy, for comparison) | {result['dense_svd_s']} |")
    lines += ["", f"Explained variance ratios, randomised: {result['explained_randomised']}"]
    if "explained_dense" in result:
        lines.append(f"; dense: {result['explained_dense']}")
    (args.out / "discovery_pca.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
