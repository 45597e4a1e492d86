"""Promotion test helpers: tiny bundles with broken or slow decoders, and registry shortcuts.

Plain functions (import them from tests); the registry fixtures come from `fixtures_registry`.

- `tiny_with_decoder(out, kind, metrics)`: a tiny bundle whose decoder still matches the spec's
  IO (so the bundle gate passes) but outputs NaN (`"nan"`), leaves the output range
  (`"out_of_range"`) or does extra matrix work (`"slow"`).
- `register_unvalidated(uri, bundle_dir, name)`: register files as a version *without*
  `load_bundle` validation, so a truly corrupt bundle reaches the gates.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from latentserve.registry.bundle import Bundle, content_hash, load_bundle
from latentserve.registry.store import RegistryClient
from latentserve.registry.tiny import build_tiny_bundle

TOLERANT_LATENCY = "[latency]\nslack_ms = 25.0\n"
"""A gates file for tests that are not about timing: a loaded test machine delays single
decodes by milliseconds, which would make the latency gate of tiny decoders flaky."""
GOOD_METRICS = {"onnx_parity_max_abs_diff": 2e-6, "recon_mse": 0.010, "monotonicity_d0": 0.90}
"""Metrics that pass the packaged gates.toml on their own (no holder)."""

DecoderKind = Literal["nan", "out_of_range", "slow"]


def tiny_with_decoder(out: Path, kind: DecoderKind, metrics: dict[str, float] | None = None,
                      *, name: str = "tiny", seed: int = 0) -> Bundle:
    """A valid tiny bundle whose decoder output is NaN, out of range, or slow to compute."""
    bundle = build_tiny_bundle(out, name=name, seed=seed, metrics=metrics)
    model = onnx.load(str(bundle.decoder_path))
    graph = model.graph
    out_name = bundle.spec.decoder.output
    for node in graph.node:
        node.output[:] = ["x_raw" if o == out_name else o for o in node.output]
    z = bundle.spec.decoder.input
    if kind == "slow":
        rng = np.random.default_rng(0)
        width, layers = 1024, 8
        weights = [rng.standard_normal((bundle.spec.latent_dim, width))]
        weights += [rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(layers)]
        prev = z
        for i, w in enumerate(weights):
            graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), f"slow_w{i}"))
            graph.node.append(helper.make_node("MatMul", [prev, f"slow_w{i}"], [f"slow_h{i}"]))
            prev = f"slow_h{i}"
        graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "slow_zero"))
        graph.node.extend([
            helper.make_node("ReduceSum", [prev], ["slow_sum"], keepdims=0),
            helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
            helper.make_node("Add", ["x_raw", "slow_nothing"], [out_name]),
        ])
    else:
        factor = np.array(np.nan if kind == "nan" else 3.0, np.float32)
        graph.initializer.append(numpy_helper.from_array(factor, "broken_factor"))
        graph.node.append(helper.make_node("Mul", ["x_raw", "broken_factor"], [out_name]))
    onnx.checker.check_model(model)
    bundle.decoder_path.write_bytes(model.SerializeToString())
    return load_bundle(bundle.root)


def corrupt_decoder_dir(out: Path, metrics: dict[str, float] | None = None) -> Bundle:
    """A tiny bundle folder whose decoder.onnx is not ONNX at all (load_bundle refuses it).

    Returns the *good* bundle's record with `root` and `content_hash` of the corrupt files,
    for `register_unvalidated`.
    """
    good = build_tiny_bundle(out, metrics=metrics)
    good.decoder_path.write_bytes(b"this is not an ONNX model")
    return dataclasses.replace(good, content_hash=content_hash(out))


def register_unvalidated(registry_uri: str, bundle: Bundle, name: str) -> int:
    """Register `bundle.root`'s files as a new version of `name`, skipping validation."""
    client = RegistryClient(registry_uri, create=True)
    return client._create_version(bundle, name)
