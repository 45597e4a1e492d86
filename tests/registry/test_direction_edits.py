"""`latentserve directions flip | rename | remove | dedupe` and `bundle evaluate`'s sign
normalisation and measure matching, on a DCGAN-tutorial generator (random weights) whose SeFa
and PCA directions overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.bundle.update import add_directions, record_metrics
from latentserve.registry.quality import direction_edits
from latentserve.registry.quality.direction_fits import as_arrays
from latentserve.registry.quality.discovery import pca, sefa
from tests.fixtures import foreign_generators as fg
from tests.fixtures.cli import run_cli


@pytest.fixture(scope="module")
def dcgan_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fg.export_dcgan(tmp_path_factory.mktemp("dcgan") / "dcgan.onnx", ngf=8)


@pytest.fixture
def bundle(tmp_path: Path, dcgan_onnx: Path) -> Bundle:
    built = build_bundle(tmp_path / "dcgan", BundleOptions("dcgan", (-1.0, 1.0)),
                         {"decoder": dcgan_onnx})
    found = sefa(built, 3) + pca(built, 3, samples=512)
    return add_directions(built.root, [(d.spec(), d.vector, d.sigma) for d in found])


def test_dedupe_prints_the_cosines_and_drops_the_later_duplicate(bundle: Bundle) -> None:
    names, cos = direction_edits.cosine_matrix(bundle)
    i, j = np.unravel_index(np.argmax(cos - np.eye(len(names))), cos.shape)
    threshold = float(cos[i, j]) - 1e-3
    code, out = run_cli("directions", "dedupe", str(bundle.root), "--max-cos", f"{threshold}")
    assert code == 0, out
    later = names[max(i, j)]
    assert f"{later}: |cos| {cos[i, j]:.3f} with {names[min(i, j)]}" in out and "dropped" in out
    assert "sefa0" in out.splitlines()[0]
    assert later not in load_bundle(bundle.root).directions


def test_dedupe_orthogonalises_when_asked(bundle: Bundle) -> None:
    v = bundle.directions["sefa0"].vector
    near = v + 0.2 * np.random.default_rng(0).standard_normal(v.shape) / np.sqrt(v.size)
    add_directions(bundle.root, [(bundle.spec.directions[0].model_copy(update={"name": "near"}),
                                  near, 1.0)])
    report = direction_edits.dedupe(bundle.root, 0.9, "orthogonalize")
    assert "near" in report.orthogonalized and report.matched["near"][0] == "sefa0"
    after = load_bundle(bundle.root)
    kept = [after.directions[n].vector for n in after.directions if n != "near"]
    assert max(abs(float(after.directions["near"].vector @ k)) for k in kept) < 1e-5
    assert "orthogonalised against" in next(d.unit for d in after.spec.directions
                                            if d.name == "near")


def test_flip_rename_remove(bundle: Bundle) -> None:
    root = str(bundle.root)
    before = bundle.directions["pc0"].vector
    assert run_cli("directions", "flip", root, "pc0")[0] == 0
    np.testing.assert_array_equal(load_bundle(bundle.root).directions["pc0"].vector, -before)
    assert run_cli("directions", "rename", root, "pc0", "lighter")[0] == 0
    assert run_cli("directions", "remove", root, "sefa2", "pc2")[0] == 0
    assert list(load_bundle(bundle.root).directions) == ["sefa0", "sefa1", "lighter", "pc1"]
    code, out = run_cli("directions", "rename", root, "nope", "x")
    assert code == 2 and "no direction 'nope'" in out


def test_flip_carries_quality_and_metrics(bundle: Bundle) -> None:
    from latentserve.registry.bundle.spec import DirectionQualitySpec

    quality = DirectionQualitySpec(measure="brightness", spearman_within=-0.99,
                                   spearman_pooled=-0.97, leak_measure="warmth",
                                   leak_plain=0.1, leak_conditional=0.05, reliable=False)
    record_metrics(bundle.root, {"direction.pc1.spearman_within": -0.99},
                   quality={"pc1": quality})
    direction_edits.flip(bundle.root, ["pc1"])
    after = load_bundle(bundle.root).spec
    q = next(d.quality for d in after.directions if d.name == "pc1")
    assert q is not None and q.spearman_within == 0.99 and q.reliable
    assert after.metrics["direction.pc1.spearman_within"] == 0.99
    direction_edits.rename(bundle.root, "pc1", "bright")
    assert "direction.bright.spearman_within" in load_bundle(bundle.root).spec.metrics


def projection_measures(folder: Path, bundle: Bundle, direction: str) -> str:
    """A `--measures` module whose measure `along` is the projection of an image on the mean
    image change a +1 σ edit along `direction` makes (monotone along it on every seed)."""
    from latentserve.registry.quality.onnx_generator import OnnxGenerator

    gen = OnnxGenerator(bundle)
    images = gen.edit(gen.seed_latents(list(range(1, 25))), None, direction, [-1.0, 1.0])
    change = (images[:, 1] - images[:, 0]).mean(axis=0).reshape(-1)
    np.save(folder / "along.npy", change / np.linalg.norm(change))
    (folder / "along_measures.py").write_text(
        "from pathlib import Path\nimport numpy as np\n"
        "W = np.load(Path(__file__).with_name('along.npy'))\n"
        "def measures(images):\n"
        "    x = np.asarray(images, np.float64).reshape(len(images), -1)\n"
        "    return {'along': x @ W, 'brightness': x.mean(axis=1)}\n")
    return "along_measures:measures"


def test_evaluate_normalises_signs_and_names_directions_after_their_measure(
        bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`neg` is −sefa0: after evaluation both point the same way, + raises the measure each
    was matched to, and the flip is printed and recorded."""
    measures = projection_measures(tmp_path, bundle, "sefa0")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = bundle.spec.directions[0].model_copy(update={"name": "neg"})
    add_directions(bundle.root, [(entry, -bundle.directions["sefa0"].vector, 1.0)])
    code, out = run_cli("bundle", "evaluate", str(bundle.root), "--measures", measures,
                        "--match-measures")
    assert code == 0, out
    after = load_bundle(bundle.root)
    measured = {d.name: d.quality for d in after.spec.directions if d.quality is not None}
    assert {"sefa0", "neg"} <= set(measured), out
    assert measured["neg"] is not None and measured["neg"].measure == "along"
    np.testing.assert_array_equal(after.directions["neg"].vector,
                                  after.directions["sefa0"].vector)
    assert all(q is not None and q.spearman_within > 0 for q in measured.values())
    assert "neg: measured ρ < 0; sign flipped so + increases along" in out
    assert after.spec.metrics["direction.neg.sign_flipped"] == 1.0
    assert "sign flipped" in next(d.unit for d in after.spec.directions if d.name == "neg")
    code, out = run_cli("bundle", "evaluate", str(bundle.root), "--measures", measures,
                        "--measure-of", "sefa0=along", "--name-after-measure")
    assert code == 0, out
    assert "along" in load_bundle(bundle.root).directions


def test_dedupe_checks_its_threshold(bundle: Bundle) -> None:
    with pytest.raises(BundleError, match="max_cos"):
        direction_edits.dedupe(bundle.root, 1.5)
    assert as_arrays([])  == {}
