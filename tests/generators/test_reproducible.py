"""Retraining reproduces a bundle: the same seed and thread count give byte-identical files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentserve.generators.digits_cvae import DigitsConfig, train_digits_cvae
from tests.fixtures.generators import MINI_EVAL

pytestmark = pytest.mark.slow

RUN_CONTEXT = {"train_seconds", "total_seconds", "load_average_1m", "git_sha"}
"""Provenance fields that record the run, not the model: how long it took, how busy the
machine was, and the checkout's commit (which may move between the two runs)."""


def _spec_without_run_context(root: Path) -> dict[str, object]:
    spec = json.loads((root / "latentserve.json").read_text())
    spec["provenance"] = {k: v for k, v in spec["provenance"].items() if k not in RUN_CONTEXT}
    return dict(spec)


def test_digits_cvae_retrains_to_identical_files(tmp_path: Path) -> None:
    cfg = DigitsConfig(epochs=2, metric_samples=100, n_pca=3, n_sefa=3, threads=2,
                       evaluation=MINI_EVAL)  # fmt: skip
    first = train_digits_cvae(tmp_path / "a", seed=0, progress=False, config=cfg)
    second = train_digits_cvae(tmp_path / "b", seed=0, progress=False, config=cfg)
    for name in ("decoder.onnx", "encoder.onnx", "directions.npz", "preview.png"):
        assert (first.root / name).read_bytes() == (second.root / name).read_bytes(), name
    assert _spec_without_run_context(first.root) == _spec_without_run_context(second.root)
