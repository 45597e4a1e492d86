"""Check a bundle folder the way the service will use it: `load_bundle` (the service's own
validation), then one batch of prior samples through onnxruntime, decoder and encoder, with
shapes, value range and finiteness reported. Example::

    report = check_bundle(Path("out/my-vae"))
    report.ok, report.lines()            # False, ["decoder: 8 × [1, 28, 28] …", "error: …"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.quality.onnx_generator import OnnxGenerator

CHECK_ITEMS = 8
"""Prior samples (Sample seed 0, labels cycling) in the check batch."""
RANGE_SLACK = 1e-3
"""Outputs may leave the spec's range by this fraction of its width."""


@dataclass
class CheckReport:
    """What `check_bundle` saw; `problems` empty means the bundle is fine."""

    bundle: Bundle
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Facts, then one `error: …` line per problem."""
        return self.facts + [f"error: {p}" for p in self.problems]


def check_bundle(root: Path, *, items: int = CHECK_ITEMS) -> CheckReport:
    """Load the bundle in `root` (raises `BundleError` when it does not load) and run one batch.

    Problems found by running it (non-finite or out-of-range outputs, wrong shapes) are listed
    in the report rather than raised.
    """
    bundle = load_bundle(root)
    spec = bundle.spec
    report = CheckReport(bundle)
    cond = f", {spec.num_classes} classes" if spec.condition else ""
    two_stage = f", mapping to W of {spec.editing_dim} (editing space)" if spec.mapping else ""
    if spec.num_ws:
        two_stage += f", W+ of {spec.num_ws} layers"
    if spec.latent_shape:
        two_stage = f" (shape {spec.latent_shape})" + two_stage
    if not spec.prior.standard:
        two_stage += f", prior {spec.prior.mean:g} + {spec.prior.scale:g}·ε"
    if spec.decoder.noise_inputs:
        two_stage += (f", {len(spec.decoder.noise_inputs)} noise inputs "
                      f"(default {spec.decoder.noise_default})")
    report.facts.append(f"{spec.name}: latent_dim {spec.latent_dim}{two_stage}, output "
                        f"{spec.output.shape} "
                        f"in {list(spec.output.range)}{cond}, max_batch_size "
                        f"{spec.max_batch_size}, {len(bundle.directions)} directions, "
                        f"encoder: {'yes' if spec.encoder else 'no'}")
    gen = OnnxGenerator(bundle)
    z = gen.sample_latents(0, items)
    labels = np.arange(items, dtype=np.int64) % spec.num_classes if spec.condition else None
    try:
        images = gen.decode(z, labels)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        report.problems.append(f"decoder: onnxruntime failed on {items} prior latents ({exc})")
        return report
    want = (items, *spec.output.shape)
    lo, hi = spec.output.range
    finite = bool(np.all(np.isfinite(images)))
    seen = (f"[{float(np.nanmin(images)):.4g}, {float(np.nanmax(images)):.4g}]"
            if np.isfinite(images).any() else "[nan, nan]")  # fmt: skip
    report.facts.append(f"decoder: {list(images.shape)} float32, values in {seen}, "
                        f"finite: {'yes' if finite else 'no'}")
    if images.shape != want:
        report.problems.append(f"decoder: output shape {list(images.shape)}, spec says "
                               f"{list(want)}")
    if not finite:
        report.problems.append("decoder: non-finite outputs on prior latents")
    slack = RANGE_SLACK * (hi - lo)
    if finite and (images.min() < lo - slack or images.max() > hi + slack):
        report.problems.append(f"decoder: outputs {seen} leave output.range [{lo:g}, {hi:g}]")
    if spec.encoder is not None and finite and images.shape == want:
        try:
            codes = gen.encode(images, labels)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            report.problems.append(f"encoder: onnxruntime failed on the decoded batch ({exc})")
            return report
        ok = bool(np.all(np.isfinite(codes)))
        error = float(np.sqrt(np.mean((codes - z) ** 2))) if ok else float("nan")
        report.facts.append(f"encoder: {list(codes.shape)} float32, finite: "
                            f"{'yes' if ok else 'no'}, RMS |encode(decode(z)) − z| {error:.4g}")
        if codes.shape != (items, spec.row_dim):
            report.problems.append(f"encoder: mean shape {list(codes.shape)}, expected "
                                   f"{[items, *spec.editing_shape]}")
        if not ok:
            report.problems.append("encoder: non-finite means on decoded prior samples")
    return report
