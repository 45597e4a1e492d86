"""The gradient reference for Project: Adam on the latent through the torch decoder, in the
style of StyleGAN2-ADA's projector (learning-rate ramp up over the first 5 %, cosine ramp down
over the last 25 %, Gaussian noise on the latent decaying to 0 over the first 75 %), with the
same loss (pixel MSE + λ (1 − MS-SSIM), written in torch) and one decoder evaluation per step.

The shipped models' torch decoders are rebuilt from the training code and loaded from the
ONNX initializers (their names are the state-dict keys); parity with ONNX Runtime is checked.
Example::

    dec = torch_decoder("sprites-vae")
    z = adam_projection(dec, targets, labels, z0, steps=1000)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import Tensor, nn

from latentserve.core.arrays import F32, I64
from latentserve.service.projection_loss import STRUCTURE_WEIGHT

ZOO = Path(__file__).resolve().parents[1] / "generators" / "zoo"


def torch_decoder(model: str) -> nn.Module:
    """The torch decoder of a shipped model with the ONNX file's weights (parity-checked)."""
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


def _fills(module: nn.Module, path: Path) -> bool:
    """Whether the ONNX file's initializers hold every tensor of `module`, shapes included."""
    shapes = {i.name: tuple(i.dims) for i in onnx.load(str(path)).graph.initializer}
    return all(shapes.get(k) == tuple(v.shape) for k, v in module.state_dict().items())


def _check_parity(module: nn.Module, path: Path) -> None:
    z = np.random.default_rng(0).standard_normal((8, _input_dim(path))).astype(np.float32)
    labels = np.zeros(8, np.int64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, {"z": z, "label": labels})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
    diff = float(np.abs(got - want).max())
    assert diff < 1e-3, f"torch and ONNX decoders differ by {diff}"


def _input_dim(path: Path) -> int:
    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape
    return int(shape.dim[1].dim_value)


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
                    lr: float = 0.1, noise: float = 0.05, spread: float = 1.0) -> F32:
    """StyleGAN2-ADA-projector-style Adam on latents (all images at once: each image's loss
    depends only on its own latent); one decoder evaluation (forward + backward) per step;
    returns the final latents, as the projector does."""
    torch.manual_seed(0)
    target = torch.from_numpy(targets)
    label = torch.from_numpy(labels)
    z = torch.tensor(z0, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    for step in range(steps):
        t = step / max(steps, 1)
        noise_scale = spread * noise * max(0.0, 1.0 - t / 0.75) ** 2
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        ramp *= min(1.0, t / 0.05)
        for group in opt.param_groups:
            group["lr"] = lr * max(ramp, 1e-3)
        zn = z + torch.randn_like(z) * noise_scale
        losses = loss_torch(decoder(zn, label), target)
        opt.zero_grad()
        losses.sum().backward()  # type: ignore[no-untyped-call]
        opt.step()
    return z.detach().numpy().astype(np.float32)
