"""The realistic decoder's torch side: the PyTorch DCGAN-tutorial generator, exported to ONNX.

Run in its own process by `bench.realistic` (so the harness never loads torch), and only when
the cached file is missing::

    python -m bench.realistic_export OUT.onnx         # writes OUT.onnx and OUT.json (facts)

The network is the tutorial's generator (nz=100, ngf=64, nc=3): five ConvTranspose2d layers
100→512 (4×4), 512→256, 256→128, 128→64, 64→3 (each doubling the side), BatchNorm + ReLU
between them, Tanh at the end; 3,576,704 parameters; z [B, 100, 1, 1] → images [B, 3, 64, 64]
in [-1, 1]. The weights are random (seed 0, the tutorial's init: conv N(0, 0.02), BatchNorm
scale N(1, 0.02)); BatchNorm's running statistics are then calibrated on 256 prior samples, so
activations keep a trained network's scale (no vanishing values) and the outputs span the Tanh
range. Exported with the project's exporter settings (`latentserve.generators.export`: opset
17, dynamo=False, dynamic batch axis, weights inline) and checked against torch.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

NZ, NGF, NC = 100, 64, 3
SEED = 0
CALIBRATION_SAMPLES = 256
INPUT, OUTPUT = "z", "image"


def dcgan_generator(nz: int = NZ, ngf: int = NGF, nc: int = NC) -> nn.Sequential:
    """The DCGAN tutorial's generator, layer for layer."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def init_weights(module: nn.Module) -> None:
    """The tutorial's `weights_init`: conv N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0."""
    if isinstance(module, nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def seeded_generator() -> nn.Sequential:
    """The generator with seed-0 weights and BatchNorm statistics calibrated on prior samples,
    in eval mode."""
    torch.manual_seed(SEED)
    net = dcgan_generator()
    net.apply(init_weights)
    for layer in net:
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = None  # cumulative average over the calibration pass
    net.train()
    with torch.no_grad():
        net(torch.randn(CALIBRATION_SAMPLES, NZ, 1, 1))
    return net.eval()


def export(out: Path) -> dict[str, object]:
    """Export the generator to `out` (ONNX) and return facts about it (parameters, parity,
    output range on 64 prior samples, seconds)."""
    from latentserve.generators.export import export_onnx, onnx_parity

    t0 = time.perf_counter()
    net = seeded_generator()
    export_onnx(net, (torch.zeros(1, NZ, 1, 1),), out, input_names=[INPUT],
                output_names=[OUTPUT])
    probe = np.random.default_rng(SEED).standard_normal((64, NZ, 1, 1)).astype(np.float32)
    parity = onnx_parity(net, out, {INPUT: probe})
    with torch.no_grad():
        images = net(torch.from_numpy(probe)).numpy()
    return {
        "architecture": "PyTorch DCGAN tutorial generator (nz=100, ngf=64, nc=3)",
        "parameters": sum(p.numel() for p in net.parameters()),
        "input": [INPUT, ["batch", NZ, 1, 1]],
        "output": [OUTPUT, ["batch", NC, 64, 64]],
        "weights": f"random, seed {SEED}; BatchNorm statistics from {CALIBRATION_SAMPLES} "
                   "prior samples",
        "parity_max_abs_diff": parity,
        "probe_output_range": [float(images.min()), float(images.max())],
        "torch": torch.__version__,
        "export_s": round(time.perf_counter() - t0, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realistic_export",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="ONNX file to write (facts go to OUT.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    facts = export(args.out)
    args.out.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
