"""ONNX export: dynamic batch, checker clean, weights inside the file, torch ↔ ORT parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from latentserve.generators.export import check_onnx, export_onnx, onnx_parity
from latentserve.generators.factor_models import FactorEncoder, SpritesDecoder
from latentserve.generators.models import DigitsCVAE, DigitsDecoder, DigitsEncoder
from latentserve.generators.shapes3d_generator import LAYOUT as SCENE_LAYOUT
from latentserve.generators.shapes3d_generator import WORLD as SCENE_WORLD
from latentserve.generators.sprites_vae import LAYOUT as SPRITES_LAYOUT


def _batch_dim(model: onnx.ModelProto, which: str) -> str:
    values = model.graph.input if which == "input" else model.graph.output
    return values[0].type.tensor_type.shape.dim[0].dim_param


@pytest.mark.parametrize("world", ["sprites", "scenes"])
def test_factor_networks_export_with_a_dynamic_batch(tmp_path: Path, world: str) -> None:
    torch.manual_seed(0)
    layout = SPRITES_LAYOUT if world == "sprites" else SCENE_LAYOUT
    classes, channels = (3, 1) if world == "sprites" else (4, 3)
    decoder = (SpritesDecoder(layout) if world == "sprites"
               else SCENE_WORLD.make_decoder()).eval()  # fmt: skip
    encoder = FactorEncoder(layout, channels, classes).eval()
    labels = torch.tensor([0, 1])
    dec_path = export_onnx(decoder, (torch.zeros(2, layout.dim), labels), tmp_path / "d.onnx",
                           input_names=["z", "label"], output_names=["x"])  # fmt: skip
    enc_path = export_onnx(encoder, (torch.zeros(2, channels, 64, 64), labels),
                           tmp_path / "e.onnx", input_names=["x", "label"],
                           output_names=["mu", "logvar"])  # fmt: skip
    dec = check_onnx(dec_path)
    assert [i.name for i in dec.graph.input] == ["z", "label"]
    assert _batch_dim(dec, "input") == "batch" and _batch_dim(dec, "output") == "batch"
    assert [o.name for o in check_onnx(enc_path).graph.output] == ["mu", "logvar"]
    assert dec_path.stat().st_size < 10 * 2**20 and enc_path.stat().st_size < 10 * 2**20
    rng = np.random.default_rng(0)
    for n in (1, 7, 256):  # any batch size runs and matches torch (latents far out too)
        z = (3 * rng.standard_normal((n, layout.dim))).astype(np.float32)
        y = rng.integers(0, classes, n)
        assert onnx_parity(decoder, dec_path, {"z": z, "label": y}) <= 1e-4
    x = rng.uniform(0, 1, (5, channels, 64, 64)).astype(np.float32)
    assert onnx_parity(encoder, enc_path, {"x": x, "label": rng.integers(0, classes, 5)}) <= 1e-4


def test_conditional_networks_take_an_int64_label(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae = DigitsCVAE(latent_dim=8).eval()
    label = torch.tensor([1, 2])
    dec_path = export_onnx(
        DigitsDecoder(vae),
        (torch.zeros(2, 8), label),
        tmp_path / "d.onnx",
        input_names=["z", "label"],
        output_names=["x"],
    )
    export_onnx(
        DigitsEncoder(vae),
        (torch.zeros(2, 1, 32, 32), label),
        tmp_path / "e.onnx",
        input_names=["x", "label"],
        output_names=["mu", "logvar"],
    )
    inputs = {i.name: i.type.tensor_type.elem_type for i in check_onnx(dec_path).graph.input}
    assert inputs == {"z": onnx.TensorProto.FLOAT, "label": onnx.TensorProto.INT64}
    z = np.random.default_rng(1).standard_normal((9, 8)).astype(np.float32)
    labels = np.arange(9, dtype=np.int64)
    assert onnx_parity(DigitsDecoder(vae), dec_path, {"z": z, "label": labels}) <= 1e-4


def test_check_onnx_names_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"broken\.onnx"):
        check_onnx(bad)
    with pytest.raises(ValueError, match=r"missing\.onnx"):
        check_onnx(tmp_path / "missing.onnx")
