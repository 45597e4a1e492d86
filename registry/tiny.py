"""Tiny analytic generators for tests and benchmarks, built with onnx.helper in milliseconds.

The decoder is x = sigmoid(z Wᵀ + b [+ E[label]]) reshaped to [C, H, W]; the encoder inverts
it exactly, mu = (logit(clip(x)) − b [− E[label]]) pinv(Wᵀ), so encode(decode(z)) ≈ z.
Everything follows from `seed`, so the same arguments give byte-identical bundles::

    bundle = build_tiny_bundle(tmp_path / "tiny")                       # 4-d latents, 1×8×8
    cond = build_tiny_bundle(tmp_path / "cond", name="tiny-cond", num_classes=3)
    two = build_tiny_bundle(tmp_path / "w", name="tiny-w", w_dim=6)     # z (4) → w (6) → x

Two-stage (`w_dim` set): a mapping w = tanh(z A + a) B + c with a non-zero mean (so w̄ ≠ 0
matters), the decoder and encoder above working on w, directions in W and
`truncation_center` = w̄ from `registry.truncation.mean_w`.

Directions: `d0` (supervised, σ 0.5), `pc0` (pca: the latent axis e₀, σ 1.0) and `sefa0`
(sefa: top eigenvector of W Wᵀ, σ 1.0).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from latentserve.core.arrays import F32
from latentserve.registry.bundle import Bundle, write_bundle
from latentserve.registry.spec import (
    SCHEMA_VERSION,
    BundleSpec,
    ConditionSpec,
    DecoderSpec,
    DirectionSpec,
    EncoderSpec,
    MappingSpec,
    OutputSpec,
)
from latentserve.registry.truncation import mean_w

OPSET = 17
IR_VERSION = 8
"""The oldest IR that carries opset 17, so every onnxruntime that runs opset 17 loads it."""
CLIP_EPS = 1e-6
LOGVAR = -4.0
"""The constant log-variance the tiny encoder reports."""
DIRECTION_SIGMAS = {"d0": 0.5, "pc0": 1.0, "sefa0": 1.0}


class TinyWeights:
    """The parameters of one tiny generator (also usable to compute its outputs in numpy)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], num_classes: int,
                 seed: int) -> None:
        rng = np.random.default_rng(seed)
        size = int(np.prod(shape))
        self.shape = shape
        self.w_t = (rng.standard_normal((latent_dim, size)) / np.sqrt(latent_dim)).astype(
            np.float32)
        self.b = (0.1 * rng.standard_normal(size)).astype(np.float32)
        self.emb = (0.5 * rng.standard_normal((max(num_classes, 1), size))).astype(np.float32)
        self.pinv = np.linalg.pinv(self.w_t.astype(np.float64)).astype(np.float32)
        self.supervised = _unit(rng.standard_normal(latent_dim))

    def decode(self, z: F32, labels: npt.NDArray[np.int64] | None = None) -> F32:
        """The decoder in numpy: [B, N] (+ labels [B]) → [B, C, H, W] in (0, 1)."""
        pre = z.astype(np.float32) @ self.w_t + self.b
        if labels is not None:
            pre = pre + self.emb[labels]
        out: F32 = (1.0 / (1.0 + np.exp(-pre))).astype(np.float32)
        return out.reshape(len(z), *self.shape)

    def sefa(self) -> F32:
        """Top eigenvector of W Wᵀ (the SeFa direction of the only layer), sign fixed."""
        gram = self.w_t.astype(np.float64) @ self.w_t.T.astype(np.float64)
        _, vecs = np.linalg.eigh(gram)
        top = vecs[:, -1]
        return _unit(top * np.sign(top[np.argmax(np.abs(top))]))


class TinyMapping:
    """The tiny two-stage mapping z [B, N] → w [B, w_dim]: tanh(z A + a) B + c."""

    def __init__(self, latent_dim: int, w_dim: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1])  # its own stream: one-stage bundles unchanged
        self.a = (rng.standard_normal((latent_dim, w_dim)) / np.sqrt(latent_dim)).astype(
            np.float32)
        self.a_bias = (0.5 * rng.standard_normal(w_dim)).astype(np.float32)
        self.b = (rng.standard_normal((w_dim, w_dim)) / np.sqrt(w_dim)).astype(np.float32)
        self.c = (0.5 + 0.25 * rng.standard_normal(w_dim)).astype(np.float32)

    def map(self, z: F32) -> F32:
        """The mapping in numpy (float32 like onnxruntime, up to rounding)."""
        hidden = np.tanh(z.astype(np.float32) @ self.a + self.a_bias)
        out: F32 = (hidden @ self.b + self.c).astype(np.float32)
        return out

    def onnx(self) -> bytes:
        """The mapping as an ONNX graph: input "z", output "w"."""
        n, w_dim = self.a.shape
        nodes = [helper.make_node("MatMul", ["z", "a"], ["za"]),
                 helper.make_node("Add", ["za", "a_bias"], ["pre"]),
                 helper.make_node("Tanh", ["pre"], ["h"]),
                 helper.make_node("MatMul", ["h", "b"], ["hb"]),
                 helper.make_node("Add", ["hb", "c"], ["w"])]
        inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", n])]
        outputs = [helper.make_tensor_value_info("w", TensorProto.FLOAT, ["batch", w_dim])]
        return _model(nodes, inputs, outputs,
                      {"a": self.a, "a_bias": self.a_bias, "b": self.b, "c": self.c},
                      "tiny_mapping")


def build_tiny_bundle(
    out_dir: Path,
    *,
    name: str = "tiny",
    latent_dim: int = 4,
    shape: tuple[int, int, int] = (1, 8, 8),
    num_classes: int = 0,
    with_encoder: bool = True,
    max_batch_size: int = 16,
    seed: int = 0,
    metrics: dict[str, float] | None = None,
    w_dim: int | None = None,
) -> Bundle:
    """Write a tiny analytic generator bundle to `out_dir` and return it (validated).

    `w_dim` makes it two-stage: a mapping z → w, editing space W of that size.
    Example::

        bundle = build_tiny_bundle(tmp_path / "t", latent_dim=8, shape=(3, 4, 4), num_classes=2)
    """
    editing_dim = latent_dim if w_dim is None else w_dim
    weights = TinyWeights(editing_dim, shape, num_classes, seed)
    mapping = None if w_dim is None else TinyMapping(latent_dim, w_dim, seed)
    conditional = num_classes > 0
    axis0 = np.zeros(editing_dim)
    axis0[0] = 1.0
    vectors = {"d0": weights.supervised, "pc0": _unit(axis0), "sefa0": weights.sefa()}
    spec = BundleSpec(
        schema_version=SCHEMA_VERSION,
        name=name,
        description="Tiny analytic generator: sigmoid(W z + b), for tests and benchmarks.",
        latent_dim=latent_dim,
        output=OutputSpec(shape=list(shape), range=(0.0, 1.0)),
        condition=ConditionSpec(num_classes=num_classes,
                                labels=[f"c{i}" for i in range(num_classes)])
        if conditional else None,
        decoder=DecoderSpec(input="w" if mapping else "z",
                            condition_input="label" if conditional else None),
        mapping=MappingSpec(w_dim=w_dim) if w_dim is not None else None,
        editing_space="w" if mapping else "z",
        truncation_center=[0.0] * editing_dim if mapping else None,  # w̄ is set below
        encoder=EncoderSpec(condition_input="label" if conditional else None)
        if with_encoder else None,
        max_batch_size=max_batch_size,
        directions=[
            DirectionSpec(name="d0", method="supervised", unit="0.5 latent units (test value)",
                          factor="tiny"),
            DirectionSpec(name="pc0", method="pca", unit="1 σ of latent codes along d"),
            DirectionSpec(name="sefa0", method="sefa", unit="1 σ of latent codes along d"),
        ],
        metrics=dict(metrics or {}),
        provenance={"generator": "registry.tiny", "seed": seed},
    )
    mapping_onnx = None
    if mapping is not None:
        mapping_onnx = mapping.onnx()
        center = mean_w(mapping_onnx, spec, seed=seed)
        spec = spec.model_copy(update={"truncation_center": [float(v) for v in center]})
    return write_bundle(
        out_dir,
        spec,
        decoder=_decoder_onnx(weights, conditional, "w" if mapping else "z"),
        mapping=mapping_onnx,
        encoder=_encoder_onnx(weights, conditional) if with_encoder else None,
        directions={k: (v, DIRECTION_SIGMAS[k]) for k, v in vectors.items()},
        preview_png=_preview(weights, num_classes, mapping, latent_dim),
    )


def _unit(v: npt.NDArray[np.floating]) -> F32:
    v64 = np.asarray(v, np.float64)
    return (v64 / np.linalg.norm(v64)).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], inits: dict[str, npt.NDArray[np.generic]],
           name: str) -> bytes:
    graph = helper.make_graph(
        nodes, name, inputs, outputs,
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="latentserve.registry.tiny", ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _decoder_onnx(w: TinyWeights, conditional: bool, latent: str = "z") -> bytes:
    c, h, wd = w.shape
    nodes = [helper.make_node("MatMul", [latent, "w_t"], ["zw"]),
             helper.make_node("Add", ["zw", "b"], ["pre0"])]
    inputs = [helper.make_tensor_value_info(latent, TensorProto.FLOAT,
                                            ["batch", w.w_t.shape[0]])]
    inits: dict[str, npt.NDArray[np.generic]] = {
        "w_t": w.w_t, "b": w.b, "shape": np.array([-1, c, h, wd], np.int64)}
    pre = "pre0"
    if conditional:
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
        inits["emb"] = w.emb
        nodes += [helper.make_node("Gather", ["emb", "label"], ["e"], axis=0),
                  helper.make_node("Add", ["pre0", "e"], ["pre1"])]
        pre = "pre1"
    nodes += [helper.make_node("Sigmoid", [pre], ["flat"]),
              helper.make_node("Reshape", ["flat", "shape"], ["x"])]
    out = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, wd])
    return _model(nodes, inputs, [out], inits, "tiny_decoder")


def _encoder_onnx(w: TinyWeights, conditional: bool) -> bytes:
    c, h, wd = w.shape
    n = w.w_t.shape[0]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, wd])]
    inits: dict[str, npt.NDArray[np.generic]] = {
        "flat_shape": np.array([-1, c * h * wd], np.int64),
        "lo": np.array(CLIP_EPS, np.float32), "hi": np.array(1.0 - CLIP_EPS, np.float32),
        "one": np.array(1.0, np.float32), "b": w.b, "pinv": w.pinv,
        "zero": np.array(0.0, np.float32), "logvar_c": np.array(LOGVAR, np.float32)}
    nodes = [helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
             helper.make_node("Clip", ["flat", "lo", "hi"], ["p"]),
             helper.make_node("Sub", ["one", "p"], ["q"]),
             helper.make_node("Div", ["p", "q"], ["odds"]),
             helper.make_node("Log", ["odds"], ["logit"]),
             helper.make_node("Sub", ["logit", "b"], ["pre0"])]
    pre = "pre0"
    if conditional:
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
        inits["emb"] = w.emb
        nodes += [helper.make_node("Gather", ["emb", "label"], ["e"], axis=0),
                  helper.make_node("Sub", ["pre0", "e"], ["pre1"])]
        pre = "pre1"
    nodes += [helper.make_node("MatMul", [pre, "pinv"], ["mu"]),
              helper.make_node("Mul", ["mu", "zero"], ["mu0"]),
              helper.make_node("Add", ["mu0", "logvar_c"], ["logvar"])]
    outputs = [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["batch", n]),
               helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["batch", n])]
    return _model(nodes, inputs, outputs, inits, "tiny_encoder")


def _preview(w: TinyWeights, num_classes: int, mapping: TinyMapping | None = None,
             latent_dim: int = 0, items: int = 8, scale: int = 8) -> bytes:
    """A 1-row PNG grid of decoded samples (seeded like the service: item i of seed 0)."""
    z = np.stack([
        np.random.default_rng(np.random.SeedSequence([0, i])).standard_normal(
            latent_dim if mapping else w.w_t.shape[0])
        for i in range(items)
    ]).astype(np.float32)
    if mapping is not None:
        z = mapping.map(z)
    labels = np.arange(items, dtype=np.int64) % num_classes if num_classes else None
    imgs = w.decode(z, labels)                                   # [B, C, H, W]
    row = np.concatenate(list(imgs.transpose(0, 2, 3, 1)), axis=1)  # [H, B*W, C]
    row = np.repeat(np.repeat(row, scale, axis=0), scale, axis=1)
    pixels = (np.clip(row, 0.0, 1.0) * 255).round().astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
