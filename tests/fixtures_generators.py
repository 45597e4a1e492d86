"""Fixtures for the generators: miniature sprites-vae / digits-cvae bundles trained in seconds
through the full path (render → train → directions → export → parity → write_bundle)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentserve.generators.factor_eval import EvalSizes
from latentserve.registry.bundle import Bundle

MINI_EVAL = EvalSizes(edit_seeds=6, prior_samples=300, roundtrip_renders=60, path_pairs=4)
MINI_SPRITES = dict(train_size=1_500, eval_size=500, epochs=1, metric_samples=100, threads=1,
                    evaluation=MINI_EVAL)
MINI_DIGITS = dict(epochs=1, edit_bases=6, metric_samples=100, n_pca=3, n_sefa=3, threads=1)


@pytest.fixture(scope="session")
def mini_sprites_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A one-epoch sprites-vae on 1,500 renders, written as a real, measured bundle."""
    from latentserve.generators.factor_pipeline import FactorConfig
    from latentserve.generators.sprites_vae import train_sprites_vae

    out = tmp_path_factory.mktemp("gen") / "sprites-vae"
    return train_sprites_vae(out, seed=0, progress=False, config=FactorConfig(**MINI_SPRITES))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def mini_digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A one-epoch digits-cvae, written as a real bundle."""
    from latentserve.generators.digits_cvae import DigitsConfig, train_digits_cvae

    out: Path = tmp_path_factory.mktemp("gen") / "digits-cvae"
    return train_digits_cvae(out, seed=0, progress=False, config=DigitsConfig(**MINI_DIGITS))  # type: ignore[arg-type]
