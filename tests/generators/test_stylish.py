"""stylish-shapes: the data set, its pixel measures, the W+ networks and their ONNX export, and
the layer-range evaluation (checked on an exact W+ renderer whose answers are known)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from latentserve.core.arrays import F32
from latentserve.generators.export import export_onnx, onnx_parity
from latentserve.generators.stylish_data import (
    APPEARANCE,
    FACTORS,
    GEOMETRY,
    LATENT_DIM,
    factor_values,
    factors_of,
    mixed_values,
    projection,
    quantiles_of,
    render,
    render_latents,
)
from latentserve.generators.stylish_eval import (
    LayerDirection,
    edit_ws,
    evaluate_layers,
    mix_ws,
)
from latentserve.generators.stylish_measures import circular_diff, measure_shapes
from latentserve.generators.stylish_model import NUM_WS, Mapping, ModulatedConv, Synthesis
from latentserve.generators.stylish_onnx import WPlusOnnx, noise_names

SMALL = {4: 8, 8: 8, 16: 8, 32: 4, 64: 4}


def test_renders_are_seeded_valid_and_keep_the_border_for_the_background() -> None:
    z = np.random.default_rng(0).standard_normal((64, LATENT_DIM))
    x = render_latents(z)
    assert x.shape == (64, 3, 64, 64) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x, render_latents(z))
    border = np.concatenate([x[:, :, :4].reshape(64, 3, -1), x[:, :, -4:].reshape(64, 3, -1)], 2)
    assert np.ptp(border, axis=2).max() < 1e-6  # one background colour
    p = projection()
    np.testing.assert_allclose(p @ p.T, np.eye(len(FACTORS)), atol=1e-12)


def test_mixed_values_take_geometry_from_the_first_and_appearance_from_the_second() -> None:
    a = factors_of(np.random.default_rng(1).standard_normal((5, LATENT_DIM)))
    b = factors_of(np.random.default_rng(2).standard_normal((5, LATENT_DIM)))
    m = mixed_values(a, b)
    for i, f in enumerate(FACTORS):
        np.testing.assert_array_equal(m[:, i], (a if f in GEOMETRY else b)[:, i])
    assert set(GEOMETRY) | set(APPEARANCE) == set(FACTORS)


def test_measures_recover_the_factors_from_pixels() -> None:
    f = factors_of(np.random.default_rng(3).standard_normal((400, LATENT_DIM)))
    m = measure_shapes(render(f))
    assert np.abs(m["pos_x"] - f[:, 3]).max() < 0.3
    assert np.abs(m["pos_y"] - f[:, 4]).max() < 0.3
    assert np.abs(circular_diff(m["orientation"], f[:, 2] * 180.0, 180.0)).max() < 1.5
    assert np.abs(circular_diff(m["object_hue"], f[:, 5], 1.0)).max() * 360 < 5.0
    assert np.abs(circular_diff(m["background_hue"], f[:, 6], 1.0)).max() * 360 < 0.1
    assert np.corrcoef(m["size"], f[:, 1])[0, 1] > 0.9
    assert np.corrcoef(m["squareness"], np.log(f[:, 0]))[0, 1] > 0.9
    assert np.corrcoef(m["stripes"], f[:, 7])[0, 1] > 0.9


def test_networks_draw_w_plus_with_noise_and_export_noise_as_graph_inputs(
        tmp_path: Path) -> None:
    torch.manual_seed(0)
    mapping, synthesis = Mapping(), Synthesis(channels=SMALL)
    z = torch.randn(3, LATENT_DIM)
    ws = mapping(z)[:, None].expand(-1, NUM_WS, -1).contiguous()
    noise = synthesis.noise_like(3)
    with torch.no_grad():
        x = synthesis(ws, *noise)
    assert x.shape == (3, 3, 64, 64) and float(x.abs().max()) <= 1.0
    names = noise_names(len(noise))
    export_onnx(mapping, (z[:2],), tmp_path / "mapping.onnx", input_names=["z"],
                output_names=["w"])
    export_onnx(synthesis, (ws[:2], *(n[:2] for n in noise)), tmp_path / "decoder.onnx",
                input_names=["ws", *names], output_names=["x"])
    graph = onnx.load(str(tmp_path / "decoder.onnx")).graph
    assert [i.name for i in graph.input] == ["ws", *names]
    feeds = {"ws": ws.detach().numpy()} | {k: n.numpy() for k, n in zip(names, noise,
                                                                        strict=True)}
    assert onnx_parity(synthesis, tmp_path / "decoder.onnx", feeds) < 1e-4
    last = synthesis.convs[8]
    assert isinstance(last, ModulatedConv)
    with torch.no_grad():
        last.noise_strength.fill_(1.0)
    other = [n.clone() for n in noise]
    other[8] += 1.0
    assert not torch.equal(synthesis(ws, *noise), synthesis(ws, *other))
    gen = WPlusOnnx(tmp_path / "mapping.onnx", tmp_path / "decoder.onnx",
                    Synthesis.noise_shapes(), NUM_WS, threads=1)
    images = gen.sample(z.numpy())
    assert images.shape == (3, 3, 64, 64) and images.min() >= 0.0 and images.max() <= 1.0


def test_edit_and_mix_touch_only_their_layers() -> None:
    bases = np.random.default_rng(4).standard_normal((2, NUM_WS, 4)).astype(np.float32)
    d = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    rows = edit_ws(bases, d, 2.0, [-1.0, 0.0, 1.0], (0, 3)).reshape(2, 3, NUM_WS, 4)
    np.testing.assert_allclose(rows[:, 2, :3, 0] - bases[:, :3, 0], 2.0, atol=1e-6)
    np.testing.assert_array_equal(rows[:, 2, 3:], bases[:, 3:])
    np.testing.assert_array_equal(rows[:, 1], bases)
    cols = np.random.default_rng(5).standard_normal((3, NUM_WS, 4)).astype(np.float32)
    mixed = mix_ws(bases, cols, (5, NUM_WS)).reshape(2, 3, NUM_WS, 4)
    np.testing.assert_array_equal(mixed[1, 2, :5], bases[1, :5])
    np.testing.assert_array_equal(mixed[1, 2, 5:], cols[2, 5:])


COARSE, FINE = (0, 5), (5, NUM_WS)


def _exact_decode(ws: F32) -> F32:
    """A perfect W+ generator with W = the factor scores: geometry from layer 0, appearance
    from the last layer."""
    geometry = factor_values(quantiles_of(ws[:, 0].astype(np.float64)))
    appearance = factor_values(quantiles_of(ws[:, -1].astype(np.float64)))
    return render(mixed_values(geometry, appearance))


def _axis(name: str, *, tilt: str | None = None) -> F32:
    v = np.zeros(len(FACTORS), np.float32)
    v[FACTORS.index(name)] = 1.0
    if tilt is not None:
        v[FACTORS.index(tilt)] = 0.4
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("seeds", [6])
def test_layer_evaluation_scores_an_exact_w_plus_renderer(seeds: int) -> None:
    rng = np.random.default_rng(seeds)
    w = rng.standard_normal((6, len(FACTORS))).astype(np.float32)
    bases = np.repeat(w[:, None], NUM_WS, axis=1)
    # a scale direction entangled with the object's hue: all-layer edits change the colour
    directions = [
        LayerDirection("scale", _axis("scale", tilt="object_hue"), 1.0, COARSE, True),
        LayerDirection("object_hue", _axis("object_hue"), 1.0, FINE, False),
        LayerDirection("background_hue", _axis("background_hue"), 1.0, FINE, False),
    ]
    cols = rng.standard_normal((5, len(FACTORS))).astype(np.float32)
    result = evaluate_layers(_exact_decode, bases, directions,
                             rows=bases[:5], cols=np.repeat(cols[:, None], NUM_WS, axis=1),
                             fine=FINE, strengths=[-2.0, -1.0, 0.0, 1.0, 2.0])
    m = result.metrics
    assert m["layers.scale.colour_leak_reduction"] > 0.95
    assert m["layers.scale.all.colour_change_deg"] > 10.0
    for hue in ("object_hue", "background_hue"):
        assert m[f"layers.{hue}.default.spearman_within"] >= 0.95
        assert m[f"layers.{hue}.fine.geometry_rho_max"] <= 0.2
        assert result.quality[hue].layers == FINE
    assert result.quality["scale"].layers == COARSE
    assert m["mix.geometry_from_row_min"] > 0.9
    assert m["mix.appearance_from_col_min"] > 0.9
    assert abs(m["mix.object_hue.from_row"]) < 0.6
