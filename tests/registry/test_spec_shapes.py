"""Spec fields of field generators: latent_shape, a scaled prior, W+ layers, noise inputs and
direction layer ranges — each checked with a message naming the field, old files unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from latentserve.registry.bundle.files import bundles_in
from latentserve.registry.bundle.spec import BundleError, BundleSpec

ZOO = Path(__file__).resolve().parents[2] / "generators" / "zoo"


def _raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"schema_version": 1, "name": "g", "latent_dim": 1024,
                           "output": {"shape": [3, 32, 32], "range": [-1, 1]}}
    raw.update(changes)
    return raw


def _w_plus(**mapping: Any) -> dict[str, Any]:
    return _raw(latent_dim=8, editing_space="w", truncation_center=[0.0] * 6,
                mapping={"w_dim": 6, "num_ws": 4, **mapping})


def test_latent_shape_and_scaled_prior() -> None:
    spec = BundleSpec.parse(_raw(latent_shape=[4, 16, 16],
                                 prior={"kind": "normal", "scale": 5.4899}))
    assert spec.prior_shape == (4, 16, 16) and spec.editing_shape == (4, 16, 16)
    assert spec.prior.scale == pytest.approx(5.4899) and spec.prior.mean == 0.0
    again = BundleSpec.parse(json.loads(spec.to_json()))
    assert again == spec


def test_the_size_cap_fits_a_64x64_latent_diffusion_code() -> None:
    spec = BundleSpec.parse(_raw(latent_dim=16384, latent_shape=[4, 64, 64]))
    assert spec.row_dim == 16384


@pytest.mark.parametrize(("changes", "field"), [
    ({"latent_shape": [4, 16, 15]}, "latent_shape"),
    ({"latent_dim": 70000}, "latent_dim"),
    ({"prior": {"kind": "normal", "scale": 0}}, "prior.scale"),
])
def test_bad_shapes_name_their_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(BundleError, match=field):
        BundleSpec.parse(_raw(**changes))


def test_w_plus_shapes() -> None:
    spec = BundleSpec.parse(_w_plus())
    assert spec.num_ws == 4 and spec.editing_shape == (4, 6) and spec.row_dim == 24
    assert spec.editing_dim == 6  # directions and w̄ stay vectors of W


def test_direction_layers_must_fit_the_w_plus_layers() -> None:
    direction = {"name": "d", "method": "pca", "unit": "σ", "layers": [0, 5]}
    with pytest.raises(BundleError, match="num_ws 4"):
        BundleSpec.parse(_w_plus() | {"directions": [direction]})
    with pytest.raises(BundleError, match="only W\\+ generators"):
        BundleSpec.parse(_raw(directions=[direction | {"layers": [0, 2]}]))
    spec = BundleSpec.parse(_w_plus() | {"directions": [direction | {"layers": [0, 2]}]})
    assert spec.directions[0].layers == (0, 2)


def test_noise_inputs_are_declared_with_shapes() -> None:
    decoder = {"noise_inputs": [{"name": "noise0", "shape": [1, 4, 4]}],
               "noise_default": "seeded"}
    spec = BundleSpec.parse(_w_plus() | {"decoder": decoder})
    assert spec.decoder.noise_inputs[0].shape == [1, 4, 4]
    with pytest.raises(BundleError, match="noise_inputs"):
        BundleSpec.parse(_w_plus() | {"decoder": {"noise_inputs": [
            {"name": "z", "shape": [1, 4, 4]}]}})


OLD_BUNDLES = [b for b in bundles_in(ZOO) if b.name in ("sprites-vae", "digits-cvae", "shapes3d")]


@pytest.mark.parametrize("bundle", OLD_BUNDLES, ids=lambda p: p.name)
def test_shipped_specs_keep_their_files(bundle: Path) -> None:
    raw = json.loads((bundle / "latentserve.json").read_text())
    spec = BundleSpec.parse(raw)
    written = json.loads(spec.to_json())
    assert written["prior"] == raw.get("prior", "normal")
    assert "latent_shape" not in written and "noise_inputs" not in written["decoder"]


def test_triton_export_declares_shaped_latents_and_noise_inputs() -> None:
    from latentserve.registry.triton.export import component_io

    decoder = {"input": "ws", "noise_inputs": [{"name": "noise0", "shape": [1, 4, 4]}]}
    spec = BundleSpec.parse(_w_plus() | {"decoder": decoder})
    inputs, _ = component_io(spec, "decoder")
    assert [(t.name, t.dims) for t in inputs] == [("ws", (4, 6)), ("noise0", (1, 4, 4))]
    (z,), (w,) = component_io(spec, "mapping")
    assert z.dims == (8,) and w.dims == (6,)
    vae = BundleSpec.parse(_raw(latent_shape=[4, 16, 16]))
    assert component_io(vae, "decoder")[0][0].dims == (4, 16, 16)
