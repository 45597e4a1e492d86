"""Build a bundle from torch modules: export each to ONNX with the project's exporter settings
(opset 17, dynamo=False, dynamic batch axis, weights inline), check torch ↔ onnxruntime parity,
then hand the files to `latentserve.registry.bundle.builder.build_bundle`. Example::

    options = BundleOptions(name="my-vae", output_range=(0.0, 1.0))
    built = build_bundle_from_torch(Path("out/my-vae"), options,
                                    {"decoder": vae.decoder, "encoder": MeanOnly(vae.encoder)},
                                    example_latent=torch.zeros(1, 16))
    built.parity                  # {"decoder": 2.4e-07, "encoder": 3.1e-07}

The decoder's forward takes (z [B, N]) or, for a conditional model, (z, labels int64 [B]) and
returns images [B, C, H, W]; the encoder's takes (images[, labels]) and returns the mean
[B, N] or a (mean, log-variance) tuple. A two-stage (StyleGAN-like) generator passes its
mapping network too — ``{"mapping": mapping, "decoder": synthesis}``: the mapping (z [B, N] →
w [B, w_dim]) is exported with input "z" and output "w", the decoder then takes w (input "w")
and an encoder returns W codes; parity is checked for the mapping, the decoder (on the mapped
prior samples) and their composition z → x. The largest |torch − onnxruntime| is recorded as
the `onnx_parity_max_abs_diff` metric the promotion gate reads; over `parity_tolerance` it is
a `BundleError` naming the component.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from latentserve.core.seeding import sample_latents
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.registry.bundle.builder import BundleOptions, OnnxComponent, build_bundle
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.spec import BundleError

PARITY_TOLERANCE = 1e-4
"""Default largest |torch − onnxruntime| accepted (the promotion gate's default limit)."""
PARITY_SAMPLES = 64
"""Prior latents (Sample seed 0) compared between torch and onnxruntime."""
PARITY_METRIC = "onnx_parity_max_abs_diff"


@dataclass(frozen=True)
class TorchBundle:
    """The bundle written and the parity measured per component (max |torch − ORT|)."""

    bundle: Bundle
    parity: dict[str, float]


def build_bundle_from_torch(out_dir: Path, options: BundleOptions,
                            modules: Mapping[str, nn.Module], *, example_latent: torch.Tensor,
                            parity_tolerance: float = PARITY_TOLERANCE) -> TorchBundle:
    """Export `modules` (`decoder`, required; `mapping`, `encoder`), check parity, build the
    bundle.

    `example_latent` ([B, N] or [N]) fixes the latent size N (of z, the mapping's input when
    there is a mapping).
    """
    unknown = sorted(set(modules) - {"mapping", "decoder", "encoder"})
    if unknown or "decoder" not in modules:
        raise BundleError(f"modules: expected 'decoder' (and optionally 'mapping', 'encoder'), "
                          f"got {sorted(modules)}")
    z_example = example_latent.detach().to(torch.float32).reshape(-1, example_latent.shape[-1])
    dim = int(z_example.shape[1])
    if options.latent_dim is not None and options.latent_dim != dim:
        raise BundleError(f"latent_dim: {options.latent_dim} was stated but example_latent has "
                          f"{dim} values per item")
    conditional = bool(options.labels)
    z = sample_latents(0, PARITY_SAMPLES, dim)
    labels = (np.arange(PARITY_SAMPLES, dtype=np.int64) % len(options.labels)
              if conditional else None)  # fmt: skip
    parity: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="latentserve-export-") as scratch:
        root = Path(scratch)
        components: dict[str, OnnxComponent] = {}
        latent = {"z": z}
        if "mapping" in modules:
            mapping_path = _export("mapping", modules["mapping"], latent, ["w"], root)
            parity["mapping"] = _parity("mapping", modules["mapping"], mapping_path, latent,
                                        parity_tolerance)
            components["mapping"] = OnnxComponent(mapping_path)
            latent = {"w": _forward(modules["mapping"], latent)[0]}
        dec_inputs = latent | ({"label": labels} if labels is not None else {})
        decoder_path = _export("decoder", modules["decoder"], dec_inputs, ["x"], root)
        parity["decoder"] = _parity("decoder", modules["decoder"], decoder_path, dec_inputs,
                                    parity_tolerance)
        components["decoder"] = OnnxComponent(decoder_path)
        if "mapping" in modules:
            parity["mapping+decoder"] = _composed_parity(
                modules["mapping"], modules["decoder"], mapping_path, decoder_path, z, labels,
                parity_tolerance)
        if "encoder" in modules:
            images = _forward(modules["decoder"], dec_inputs)[0]
            enc_inputs = {"x": images} | ({"label": labels} if labels is not None else {})
            outputs = ["mu", "logvar"][: len(_forward(modules["encoder"], enc_inputs))]
            encoder_path = _export("encoder", modules["encoder"], enc_inputs, outputs, root)
            parity["encoder"] = _parity("encoder", modules["encoder"], encoder_path,
                                        enc_inputs, parity_tolerance)
            components["encoder"] = OnnxComponent(encoder_path)
        worst = max(parity.values())
        stages = ("mapping, the decoder (on the mapped latents), the two composed"
                  if "mapping" in modules else "decoder")
        parts = " and ".join(f"{k} ({v:.3g})" for k, v in parity.items())
        options = replace(
            options, latent_dim=dim,
            metrics={**options.metrics, PARITY_METRIC: worst},
            metric_notes={**options.metric_notes, PARITY_METRIC: (
                f"max |torch − onnxruntime| over {PARITY_SAMPLES} prior latents (Sample seed 0) "
                f"through the {stages} and their decoded images through the encoder: "
                f"{parts}")},
            provenance={"source": "torch", "torch_version": torch.__version__,
                        **options.provenance},
        )
        bundle = build_bundle(out_dir, options, components)
    return TorchBundle(bundle, parity)


def _forward(module: nn.Module, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    module.eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    items = out if isinstance(out, tuple | list) else (out,)
    return [t.detach().numpy().astype(np.float32) for t in items]


def _export(kind: str, module: nn.Module, inputs: Mapping[str, np.ndarray],
            outputs: list[str], root: Path) -> Path:
    example = tuple(torch.from_numpy(np.ascontiguousarray(v[:2])) for v in inputs.values())
    try:
        return export_onnx(module, example, root / f"{kind}.onnx", input_names=list(inputs),
                           output_names=outputs)
    except (ValueError, RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{kind}: ONNX export failed ({first})") from None


def _composed_parity(mapping: nn.Module, decoder: nn.Module, mapping_path: Path,
                     decoder_path: Path, z: np.ndarray, labels: np.ndarray | None,
                     tolerance: float) -> float:
    """Max |decoder(mapping(z)) in torch − the same through both ONNX files| (what Sample
    serves), so per-stage errors that compound are caught too."""
    extra = {} if labels is None else {"label": labels}
    expected = _forward(decoder, {"w": _forward(mapping, {"z": z})[0]} | extra)[0]
    w = ort.InferenceSession(str(mapping_path), providers=["CPUExecutionProvider"]).run(
        ["w"], {"z": z})[0]
    got = ort.InferenceSession(str(decoder_path), providers=["CPUExecutionProvider"]).run(
        ["x"], {"w": np.asarray(w, np.float32)} | extra)[0]
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - expected)))
    if not diff <= tolerance:
        raise BundleError(f"mapping+decoder: max |torch − onnxruntime| of the composition "
                          f"z → w → x is {diff:.3g} on {len(z)} prior latents, over the parity "
                          f"tolerance {tolerance:g}")
    return diff


def _parity(kind: str, module: nn.Module, path: Path, inputs: Mapping[str, np.ndarray],
            tolerance: float) -> float:
    diff = onnx_parity(module, path, inputs)
    if not diff <= tolerance:
        raise BundleError(f"{kind}: max |torch − onnxruntime| is {diff:.3g} on "
                          f"{len(next(iter(inputs.values())))} probe inputs, over the parity "
                          f"tolerance {tolerance:g}")
    return diff
