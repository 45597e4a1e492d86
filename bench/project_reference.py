"""The gradient reference for Project: Adam on the latent through the torch decoder, in the
style of StyleGAN2-ADA's projector (learning-rate ramp up over the first 5 %, cosine ramp down
over the last 25 %, Gaussian noise on the latent decaying to 0 over the first 75 %), with the
same loss (pixel MSE + λ (1 − MS-SSIM), written in torch) and one decoder evaluation per step.

The shipped models' torch decoders are rebuilt from the training code and loaded from the
ONNX initializers (their names are the state-dict keys); parity with ONNX Runtime is checked.
A W+ model's decoder (stylish-shapes) takes editing-space rows [n, L·w_dim] like the service
and feeds its noise inputs the bundle's default noise; it returns the bundle's output range,
which `adam_projection` maps to [0, 1] for the loss (`value_range`). Example::

    dec = torch_decoder("sprites-vae")
    z = adam_projection(dec, targets, labels, z0, steps=1000)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import Tensor, nn

from latentserve.core.arrays import F32, I64
from latentserve.registry.bundle import feeds
from latentserve.registry.bundle.spec import SPEC_FILE, BundleSpec
from latentserve.service.projection_loss import STRUCTURE_WEIGHT

ZOO = Path(__file__).resolve().parents[1] / "generators" / "zoo"
WPLUS_MODELS = ("stylish-shapes",)


def torch_decoder(model: str) -> nn.Module:
    """The torch decoder of a shipped model with the ONNX file's weights (parity-checked)."""
    if model in WPLUS_MODELS:
        return _wplus_decoder(model)
    if model == "sprites-vae":
        from latentserve.generators.factor_models import SpritesDecoder
        from latentserve.generators.sprites_vae import LAYOUT
        module: nn.Module = SpritesDecoder(LAYOUT)
    elif model == "shapes3d":
        from latentserve.generators.factor_models import SceneDecoder
        from latentserve.generators.shapes3d_decoder import ResizeConvDecoder
        from latentserve.generators.shapes3d_generator import LAYOUT as SCENE
        # the bundle's decoder is whichever architecture its initializers fill completely
        module = next(m for m in (ResizeConvDecoder(SCENE, num_classes=4),
                                  SceneDecoder(SCENE, num_classes=4))
                      if _fills(m, ZOO / model / "decoder.onnx"))  # fmt: skip
    elif model == "digits-cvae":
        from latentserve.generators.models import DigitsCVAE, DigitsDecoder
        module = DigitsDecoder(DigitsCVAE())
    else:
        raise ValueError(model)
    path = ZOO / model / "decoder.onnx"
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(path)).graph.initializer}
    state = module.state_dict()
    loaded = {k: v for k, v in weights.items() if k in state}
    assert loaded, f"no ONNX initializer of {model} matches the torch module"
    state.update(loaded)
    module.load_state_dict(state)
    module.eval()
    _check_parity(module, path)
    return module


class WPlusDecoder(nn.Module):
    """A W+ synthesis as a decoder of editing-space rows, the way the service's
    `Backend.decode` runs it: rows [n, L·w_dim] are shaped to ws [n, L, w_dim] and every row
    gets the bundle's default noise; labels are ignored (unconditional); images come in the
    bundle's output range."""

    def __init__(self, synthesis: nn.Module, spec: BundleSpec) -> None:
        super().__init__()
        choice = feeds.default_noise(spec)
        if choice.mode == "seeded":
            raise ValueError(f"{spec.name}: seeded default noise differs per row; the "
                             "reference feeds one fixed noise to every row")
        self.synthesis = synthesis
        self.input = spec.decoder.input
        self.shape = spec.editing_shape
        self.noise = feeds.noise_feeds(spec, choice, [0])
        """Noise input name → the values of one row [1, C, H, W], in input order."""
        self._noise = [torch.from_numpy(v.copy()) for v in self.noise.values()]

    def forward(self, rows: Tensor, labels: Tensor | None = None) -> Tensor:
        n = len(rows)
        ws = rows.reshape(n, *self.shape)
        images: Tensor = self.synthesis(ws, *(v.expand(n, -1, -1, -1) for v in self._noise))
        return images

    def onnx_feeds(self, rows: F32) -> dict[str, F32]:
        """The ONNX decoder's inputs for the same rows and noise."""
        n = len(rows)
        out = {self.input: feeds.shaped(rows, self.shape)}
        for name, one in self.noise.items():
            out[name] = np.ascontiguousarray(np.broadcast_to(one, (n, *one.shape[1:])))
        return out


class BroadcastW(nn.Module):
    """A W+ decoder driven by one w per image [n, w_dim], put on every one of its `layers`:
    the space StyleGAN2-ADA's projector optimises."""

    def __init__(self, decoder: nn.Module, layers: int) -> None:
        super().__init__()
        self.decoder = decoder
        self.layers = layers

    def forward(self, w: Tensor, labels: Tensor | None = None) -> Tensor:
        images: Tensor = self.decoder(w.repeat(1, self.layers), labels)
        return images


def _wplus_decoder(model: str) -> WPlusDecoder:
    """The stylish synthesis of `model` with the widths and weights of its decoder.onnx."""
    from latentserve.generators.stylish_model import LAYER_RESOLUTIONS, Synthesis

    spec = BundleSpec.from_file(ZOO / model / SPEC_FILE)
    path = ZOO / model / spec.decoder.file
    graph = onnx.load(str(path)).graph
    named = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
             for i in graph.initializer}
    channels = {res: int(named[f"convs.{i}.weight"].shape[0])
                for i, res in enumerate(LAYER_RESOLUTIONS)}
    synthesis = Synthesis(w_dim=int(named["pose.weight"].shape[1]), channels=channels)
    state = synthesis.state_dict()
    loaded = {k: v for k, v in named.items() if k in state} | _folded_biases(graph, state)
    unused = {"to_rgb.noise_strength"}  # ToRGB gets no noise: the graph has no such tensor
    missing = set(state) - set(loaded) - unused
    assert not missing, f"{model}: decoder.onnx lacks {sorted(missing)}"
    synthesis.load_state_dict({**state, **loaded})  # shapes are checked here
    module = WPlusDecoder(synthesis, spec)
    module.eval()
    _check_parity(module, path)
    return module


def _folded_biases(graph: Any, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Biases the exporter folded into unnamed [1, C, 1, 1] constants, named by the module scope
    of the Add that reads them (`/convs.3/Add_6` → `convs.3.bias`)."""
    arrays = {i.name: i for i in graph.initializer if i.name not in state}
    found: dict[str, Tensor] = {}
    for node in graph.node:
        key = f"{node.name.split('/')[1]}.bias" if node.name.count("/") >= 2 else ""
        if node.op_type != "Add" or key not in state:
            continue
        for name in node.input:
            if name in arrays:
                value = numpy_helper.to_array(arrays[name]).copy()
                found[key] = torch.from_numpy(value.reshape(state[key].shape))
    return found


def _fills(module: nn.Module, path: Path) -> bool:
    """Whether the ONNX file's initializers hold every tensor of `module`, shapes included."""
    shapes = {i.name: tuple(i.dims) for i in onnx.load(str(path)).graph.initializer}
    return all(shapes.get(k) == tuple(v.shape) for k, v in module.state_dict().items())


def _check_parity(module: nn.Module, path: Path) -> None:
    z = np.random.default_rng(0).standard_normal((8, _input_dim(path))).astype(np.float32)
    labels = np.zeros(8, np.int64)
    inputs = (module.onnx_feeds(z) if isinstance(module, WPlusDecoder)
              else {"z": z, "label": labels})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, inputs)[0]
    with torch.no_grad():
        got = module(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
    diff = float(np.abs(got - want).max())
    assert diff < 1e-3, f"torch and ONNX decoders differ by {diff}"


def _input_dim(path: Path) -> int:
    """Values per row of the decoder's first input (N of z [n, N]; L·w_dim of ws)."""
    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape
    return math.prod(int(d.dim_value) for d in shape.dim[1:])


def _ssim_torch(a: Tensor, b: Tensor) -> Tensor:
    taps = torch.exp(-0.5 * (torch.arange(-3, 4, dtype=a.dtype) / 1.5) ** 2)
    taps = taps / taps.sum()
    c = a.shape[1]
    kx = taps.view(1, 1, 1, 7).repeat(c, 1, 1, 1)
    ky = taps.view(1, 1, 7, 1).repeat(c, 1, 1, 1)

    def blur(x: Tensor) -> Tensor:
        x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="reflect"), kx, groups=c)
        return F.conv2d(F.pad(x, (0, 0, 3, 3), mode="reflect"), ky, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1)
                                                     * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def loss_torch(x: Tensor, target: Tensor, weight: float = STRUCTURE_WEIGHT) -> Tensor:
    """Per-image MSE + λ (1 − MS-SSIM) as in `latentserve.service.projection_loss`."""
    value = ((x - target) ** 2).mean(dim=(1, 2, 3))
    if weight:
        total, weights = torch.zeros_like(value), 0.0
        a, b = x, target
        for w in (0.0448, 0.2856, 0.3001, 0.2363, 0.1333):
            if min(a.shape[-2:]) < 8:
                break
            total = total + w * _ssim_torch(a, b)
            weights += w
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        value = value + weight * (1.0 - total / weights)
    return value


def adam_projection(decoder: nn.Module, targets: F32, labels: I64, z0: F32, *, steps: int,
                    lr: float = 0.1, noise: float = 0.05, spread: float | F32 = 1.0,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> F32:
    """StyleGAN2-ADA-projector-style Adam on latents (all images at once: each image's loss
    depends only on its own latent); one decoder evaluation (forward + backward) per step;
    returns the final latents, as the projector does. Targets are in [0, 1]; `spread` scales
    the latent noise (one scale, or one per coordinate [D]); `value_range` is the decoder's
    output range, mapped to [0, 1] for the loss."""
    torch.manual_seed(0)
    target = torch.from_numpy(targets)
    label = torch.from_numpy(labels)
    scale = (spread if isinstance(spread, float | int)
             else torch.from_numpy(np.asarray(spread, np.float32)))
    lo, hi = value_range
    z = torch.tensor(z0, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    for step in range(steps):
        t = step / max(steps, 1)
        noise_scale = scale * noise * max(0.0, 1.0 - t / 0.75) ** 2
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        ramp *= min(1.0, t / 0.05)
        for group in opt.param_groups:
            group["lr"] = lr * max(ramp, 1e-3)
        zn = z + torch.randn_like(z) * noise_scale
        images = decoder(zn, label)
        if (lo, hi) != (0.0, 1.0):
            images = (images - lo) / (hi - lo)
        losses = loss_torch(images, target)
        opt.zero_grad()
        losses.sum().backward()  # type: ignore[no-untyped-call]
        opt.step()
    return z.detach().numpy().astype(np.float32)
