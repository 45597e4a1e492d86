"""The shipped W+ generator `stylish-shapes` through a running service: its layer-range
measures re-measured on images decoded by the Decode RPC reproduce the numbers its bundle
records and meet the targets (one missed target is a strict xfail that says by how much), and
the StyleMix RPC draws what the NumPy/onnxruntime reference draws."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentserve.client import Client
from latentserve.core.arrays import F32
from latentserve.generators.stylish_eval import (
    GEOMETRY_RHO_MAX,
    HUE_RHO_MIN,
    LEAK_REDUCTION_MIN,
    LayerDirection,
    LayerEvaluation,
    evaluate_layers,
    mix_ws,
)
from latentserve.generators.stylish_generator import (
    EDIT_SEEDS,
    FINE,
    MIX_COLS,
    MIX_ROWS,
    NAME,
)
from latentserve.generators.stylish_onnx import OUTPUT_RANGE, WPlusOnnx
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.preview import to_unit_range
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.registry import _sqlite_uri
from tests.fixtures.service import service_settings

pytestmark = pytest.mark.timeout(900)  # ≈ 5,000 images decoded by the service and measured
BUNDLE = Path(__file__).resolve().parents[2] / "generators" / "zoo" / NAME
GEOMETRY_DIRECTIONS = ("scale", "orientation")
HUE_DIRECTIONS = ("object_hue", "background_hue")
MEASURED = (*GEOMETRY_DIRECTIONS, *HUE_DIRECTIONS)
"""The directions re-measured (their plain sweeps do not depend on which others are swept)."""
SAME = 0.02
"""Largest difference from the recorded numbers (the service batches differently, which can
move a measure by float rounding and so break a tie)."""


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, registry_template: Path,
           bundle: Bundle) -> Iterator[Client]:  # fmt: skip
    """A real server (embedded backend) over a registry holding only stylish-shapes."""
    db = tmp_path_factory.mktemp("stylish-registry") / "mlflow.db"
    shutil.copyfile(registry_template, db)
    uri = _sqlite_uri(db)
    register_bundle(uri, bundle.root, NAME, alias="production")
    settings = service_settings(uri, tmp_path_factory.mktemp("stylish-cache"),
                                default_model=NAME)  # fmt: skip
    with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=120.0) as c:
        yield c


def _seed_ws(client: Client, seeds: tuple[int, ...]) -> F32:
    """W+ latents of item 0 of Sample(seed) for each seed, as the service returns them."""
    rows = [client.sample(NAME, seed=s, n=1).latents for s in seeds]
    return np.concatenate([np.asarray(r, np.float32) for r in rows])


@pytest.fixture(scope="module")
def measured(client: Client, bundle: Bundle) -> LayerEvaluation:
    """The layer-range evaluation on images the Decode RPC draws."""
    spec = bundle.spec

    def decode(ws: F32) -> F32:
        out = client.decode(NAME, ws).images
        assert out is not None
        return to_unit_range(out, OUTPUT_RANGE)

    bases = _seed_ws(client, EDIT_SEEDS)
    assert bases.shape == (len(EDIT_SEEDS), spec.num_ws, spec.editing_dim)
    directions = []
    for d in spec.directions:
        if d.name not in MEASURED:
            continue
        found = bundle.directions[d.name]
        assert d.layers is not None
        directions.append(LayerDirection(d.name, found.vector, found.sigma, d.layers,
                                         d.layers[0] == 0))  # fmt: skip
    return evaluate_layers(decode, bases, directions, rows=_seed_ws(client, MIX_ROWS),
                           cols=_seed_ws(client, MIX_COLS), fine=FINE)


def test_layer_measures_through_the_service_match_the_bundle(measured: LayerEvaluation,
                                                             bundle: Bundle) -> None:
    got, recorded = measured.metrics, bundle.spec.metrics
    assert {k.split(".")[1] for k in got if k.startswith("layers.")} == set(MEASURED)
    for key in sorted(got):
        assert abs(got[key] - recorded[key]) <= SAME * max(1.0, abs(recorded[key])), key
    for d in bundle.spec.directions:
        assert d.quality is not None and d.quality.layers == d.layers
        if d.name in MEASURED:
            assert measured.quality[d.name].layers == d.layers


def test_coarse_edits_cut_colour_leakage_and_fine_edits_turn_hue(
        measured: LayerEvaluation) -> None:
    got = measured.metrics
    for name in GEOMETRY_DIRECTIONS:
        assert got[f"layers.{name}.colour_leak_reduction"] >= LEAK_REDUCTION_MIN
    for name in HUE_DIRECTIONS:
        assert got[f"layers.{name}.default.spearman_within"] >= HUE_RHO_MIN
    assert got["mix.geometry_from_row_min"] > 0.5
    assert min(got[f"mix.{m}.from_row"] for m in ("orientation", "pos_x", "pos_y")) > 0.9
    assert min(got[f"mix.{m}.from_col"] for m in HUE_DIRECTIONS) > 0.99


@pytest.mark.xfail(strict=True, reason="missed target: on fine-only hue edits the measured "
                   "size, position and orientation still move with strength (largest |mean ρ| "
                   "0.27 for object_hue, 0.35 for background_hue; target ≤ 0.2), partly where "
                   "the edited hue nears the other region's and the pixel mask loses contrast")
def test_fine_edits_keep_geometry(measured: LayerEvaluation) -> None:
    for name in HUE_DIRECTIONS:
        assert measured.metrics[f"layers.{name}.fine.geometry_rho_max"] <= GEOMETRY_RHO_MAX


def test_style_mix_rpc_draws_the_reference_mix(client: Client, bundle: Bundle) -> None:
    spec = bundle.spec
    assert bundle.mapping_path is not None
    gen = WPlusOnnx(bundle.mapping_path, bundle.decoder_path,
                    [n.shape for n in spec.decoder.noise_inputs], spec.num_ws)
    rows, cols = MIX_ROWS[:3], MIX_COLS[:4]
    mixed = client.style_mix(NAME, row_seeds=list(rows), col_seeds=list(cols), layers=FINE)
    assert mixed.images is not None
    reference = gen.decode_raw(mix_ws(_seed_ws(client, rows), _seed_ws(client, cols), FINE))
    np.testing.assert_allclose(mixed.images, reference, atol=1e-5)
