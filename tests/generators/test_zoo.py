"""The committed zoo bundles: valid, small, runnable, and doing what they claim, measured on
their images through a running service by the project's image measures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from scipy.stats import spearmanr

from latentserve.client import Client
from latentserve.core.arrays import F32, F64, I64
from latentserve.generators.digits import load_digit_images
from latentserve.generators.digits_directions import DUPLICATE_COS
from latentserve.generators.digits_measures import MEASURES as DIGIT_MEASURES
from latentserve.generators.digits_measures import digit_image_measures
from latentserve.generators.digits_measures import smallest_real_ink as faintest_real_digit
from latentserve.generators.latent_report import ENTANGLED
from latentserve.generators.shapes3d_generator import real_renders as scene_renders
from latentserve.generators.shapes3d_measures import (
    SCENE_MEASURES,
    measure_scenes,
    smallest_real_size,
)
from latentserve.generators.sprite_measures import SPRITE_MEASURES, smallest_real_ink
from latentserve.generators.sprites_vae import real_renders as sprite_renders
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.quality.evaluate import edit_labels
from latentserve.registry.quality.latent_eval import POOLED_MIN, WITHIN_MIN, DirectionQuality
from latentserve.registry.quality.scene_eval import (
    EDIT_SEEDS,
    ImageMeasures,
    quality_of,
    roundtrip_errors,
)
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.service.devtools.background import BackgroundServer
from tests.fixtures.registry import _sqlite_uri
from tests.fixtures.service import service_settings

ZOO = Path(__file__).resolve().parents[2] / "generators" / "zoo"
MAX_ONNX_BYTES = 10 * 2**20
FACTOR_MODELS = {"sprites-vae": SPRITE_MEASURES, "shapes3d": SCENE_MEASURES}


def _digit_measures() -> ImageMeasures:
    """digits-cvae's measures, each direction scored on the measure its bundle records."""
    spec = load_bundle(ZOO / "digits-cvae").spec
    return digit_image_measures({d.name: d.quality.measure if d.quality else d.name
                                 for d in spec.directions})  # fmt: skip


MEASURED = {**FACTOR_MODELS, "digits-cvae": _digit_measures()}
"""Every zoo model whose directions are measured on its images."""
REQUIRED = {
    "sprites-vae": ("scale", "orientation", "pos_x", "pos_y"),
    "shapes3d": ("floor_hue", "wall_hue", "object_hue", "scale"),
    "digits-cvae": ("thickness", "slant", "pos_x", "width"),
}
"""Directions that must meet within-seed ρ ≥ 0.95 and pooled ρ ≥ 0.9 through the service."""
CLASS_KEPT = {"sprites-vae": 0.9, "shapes3d": 0.9, "digits-cvae": 0.9}
"""Encode → Decode keeps the class at least this often, in every class."""


@pytest.mark.parametrize("name", ["sprites-vae", "shapes3d", "digits-cvae"])
def test_zoo_bundle_loads_and_runs(name: str) -> None:
    bundle = load_bundle(ZOO / name)
    spec = bundle.spec
    assert spec.name == name and spec.max_batch_size == 256
    assert bundle.encoder_path is not None
    for path in (bundle.decoder_path, bundle.encoder_path):
        assert path.stat().st_size < MAX_ONNX_BYTES
    assert spec.metrics["onnx_parity_max_abs_diff"] <= 1e-4
    assert spec.provenance["seed"] == 0 and spec.provenance["torch_version"]
    feeds: dict[str, np.ndarray] = {
        spec.decoder.input: np.zeros((256, spec.latent_dim), np.float32)
    }
    if spec.decoder.condition_input:
        feeds[spec.decoder.condition_input] = np.arange(256, dtype=np.int64) % spec.num_classes
    session = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    (x,) = session.run([spec.decoder.output], feeds)
    assert x.shape == (256, *spec.output.shape)
    assert spec.output.range[0] <= x.min() and x.max() <= spec.output.range[1]


def test_digits_cvae_directions_are_measured_distinct_and_held_apart() -> None:
    bundle = load_bundle(ZOO / "digits-cvae")
    spec, metrics = bundle.spec, bundle.spec.metrics
    names = [d.name for d in spec.directions]
    assert names[: len(DIGIT_MEASURES)] == list(DIGIT_MEASURES)
    for d in spec.directions:
        assert d.quality is not None and d.quality.measure == (d.factor or d.name), d.name
        assert d.method == "supervised" or d.name.startswith(f"{d.quality.measure}_"), d.name
    vectors = np.stack([bundle.directions[n].vector for n in names]).astype(np.float64)
    cos = np.abs(vectors @ vectors.T) / np.outer(*(2 * [np.linalg.norm(vectors, axis=1)]))
    assert np.max(cos - np.eye(len(names))) < DUPLICATE_COS
    # slant is held apart from vertical position: its plain normal drags the digit up
    assert metrics["direction.slant.pos_y_leak_held"] <= 0.5 * metrics[
        "direction.slant.pos_y_leak_plain"]
    assert abs(metrics["direction.slant.pos_y_rho_held"]) < 0.5
    reliable = {d.name for d in spec.directions if d.quality and d.quality.reliable}
    edits = spec.description.split("; edit ")[1].split(" (each measured")[0].split(", ")
    assert ("width" in edits) == ("width" in reliable)
    for measure in DIGIT_MEASURES:  # diversity against the real test digits
        assert 0.0 < metrics[f"sample_spread_{measure}"] < 2.0


@pytest.mark.parametrize("name", list(MEASURED))
def test_descriptions_claim_only_reliable_directions(name: str) -> None:
    spec = load_bundle(ZOO / name).spec
    edits = spec.description.split("; edit ")[1].split(" (each measured")[0]
    claimed = set(edits.split(", "))
    for d in spec.directions:
        assert d.quality is not None, d.name
        assert d.quality.reliable == (d.quality.spearman_within >= WITHIN_MIN
                                      and d.quality.spearman_pooled >= POOLED_MIN)  # fmt: skip
        assert (d.name in claimed) == d.quality.reliable, d.name


@pytest.fixture(scope="module")
def zoo_client(tmp_path_factory: pytest.TempPathFactory, registry_template: Path,
               ) -> Iterator[Client]:  # fmt: skip
    """A real server (embedded backend) over a registry holding the shipped factor models."""
    db = tmp_path_factory.mktemp("zoo-registry") / "mlflow.db"
    shutil.copyfile(registry_template, db)
    uri = _sqlite_uri(db)
    for name in MEASURED:
        register_bundle(uri, ZOO / name, name, alias="production")
    settings = service_settings(uri, tmp_path_factory.mktemp("zoo-cache"),
                                default_model="sprites-vae")  # fmt: skip
    with BackgroundServer(settings) as bg, Client(bg.address, timeout_s=120.0) as client:
        yield client


def _service_edit(client: Client, model: str) -> object:
    def edit(_bases: F32, labels: I64, direction: str, strengths: Sequence[float],
             conditional_on: Sequence[str]) -> F32:  # fmt: skip
        out = client.edit(model, seeds=list(EDIT_SEEDS), direction=direction,
                          strengths=list(strengths), conditional_on=list(conditional_on),
                          class_labels=[int(v) for v in labels])  # fmt: skip
        assert out.images is not None
        return out.images.reshape(len(EDIT_SEEDS), len(strengths), *out.images.shape[1:])

    return edit


def _measured_quality(client: Client, model: str, measures: ImageMeasures,
                      ) -> dict[str, DirectionQuality]:  # fmt: skip
    info = client.get_model(model)
    labels = edit_labels(info.num_classes, EDIT_SEEDS)
    bases = np.zeros((len(EDIT_SEEDS), info.latent_dim), np.float32)  # the service draws them
    return quality_of(_service_edit(client, model), bases, labels, measures)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", list(MEASURED))
def test_directions_move_what_they_name_through_the_service(zoo_client: Client,
                                                            model: str) -> None:  # fmt: skip
    quality = _measured_quality(zoo_client, model, MEASURED[model])
    for name in REQUIRED[model]:
        q = quality[name]
        assert q.within >= WITHIN_MIN and q.pooled >= POOLED_MIN, q
    if model in ENTANGLED:  # conditional edits cut the leakage of the coupled pair
        q = quality[ENTANGLED[model][0]]
        assert q.leak_conditional <= 0.5 * q.leak_plain, q
    # GetModel reports what a client measures (same seeds, same service, same measures)
    info = {d.name: d for d in zoo_client.get_model(model).directions}
    for name, q in quality.items():
        recorded = info[name].quality
        assert recorded is not None and recorded.measure == q.measure
        assert abs(recorded.spearman_within - q.within) < 0.01, name
        assert abs(recorded.leak_plain - q.leak_plain) < 0.01 + 0.02 * q.leak_plain, name
        assert recorded.reliable == q.reliable


def _test_digits(n: int, _stream: int) -> tuple[F32, I64, F64]:
    data = load_digit_images()
    return data.test_images[:n], data.test_labels[:n], np.zeros((n, 0))


RENDERS = {"sprites-vae": sprite_renders, "shapes3d": scene_renders, "digits-cvae": _test_digits}
"""Real images of each model with their classes: renders, or the real test digits."""


@pytest.mark.parametrize("model", list(MEASURED))
def test_encode_decode_keeps_class_and_factors(zoo_client: Client, model: str) -> None:
    images, labels, _ = RENDERS[model](300, 4)
    z = zoo_client.encode(model, images, class_labels=[int(v) for v in labels]).latents
    back = zoo_client.decode(model, z, class_labels=[int(v) for v in labels]).images
    assert back is not None
    errors = roundtrip_errors(images, back, labels, MEASURED[model])
    assert errors["roundtrip_class_accuracy_worst"] >= CLASS_KEPT[model], errors
    if model == "sprites-vae":
        assert errors["roundtrip_orientation_error_deg"] <= 10.0, errors


FLOORS = {"sprites-vae": smallest_real_ink, "shapes3d": smallest_real_size,
          "digits-cvae": faintest_real_digit}  # fmt: skip


@pytest.mark.parametrize("model", list(MEASURED))
def test_prior_has_no_holes(zoo_client: Client, model: str) -> None:
    measures = MEASURED[model]
    classes = zoo_client.get_model(model).num_classes
    floor = FLOORS[model]()
    presence = []
    for seed in range(3):
        labels = np.arange(1000) % classes
        out = zoo_client.sample(model, n=1000, seed=seed, class_labels=[int(v) for v in labels])
        assert out.images is not None
        presence.append(measures.measure(out.images, labels).values[measures.presence])
    assert np.mean(np.concatenate(presence) < 0.9 * floor) < 0.01


def test_shapes3d_scale_moves_every_objects_height(zoo_client: Client) -> None:
    """The scale edit grows and shrinks every object's height, the capsule's included: in
    each class, the height rises with the strength for at least 95 % of the seeds."""
    strengths = [float(s) for s in np.linspace(-3.0, 3.0, 13)]
    info = zoo_client.get_model("shapes3d")
    labels = edit_labels(info.num_classes, EDIT_SEEDS)
    out = zoo_client.edit("shapes3d", seeds=list(EDIT_SEEDS), direction="scale",
                          strengths=strengths, class_labels=[int(v) for v in labels])
    assert out.images is not None
    height = measure_scenes(out.images)["height"].reshape(len(EDIT_SEEDS), len(strengths))
    rho = np.array([spearmanr(strengths, row).statistic for row in height])
    for label in range(info.num_classes):
        rising = np.mean(rho[labels == label] >= WITHIN_MIN)
        assert rising >= 0.95, (info.class_names[label], rho[labels == label])
