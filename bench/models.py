"""The generator under test and the throw-away MLflow registries the benchmark services read.

The shipped `sprites-vae` (generators/zoo/sprites-vae) is used when it exists and is
unconditional (the scenarios send no class labels); otherwise a tiny analytic generator of the
same size (latent 10, 1×64×64, max batch 256) stands in, and the results say so. Example::

    choice = choose_bundle(cfg)               # ChosenModel: bundle + where it came from
    uri = Registries(work / "registries").create("main", {choice.name: [choice.bundle.root]})
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import ZOO_SPRITES, RunConfig
from latentserve.registry.bundle import Bundle, load_bundle
from latentserve.registry.spec import SPEC_FILE
from latentserve.registry.tiny import build_tiny_bundle

PRODUCTION = "production"
STANDIN_LATENT_DIM = 10
STANDIN_SHAPE = (1, 64, 64)
STANDIN_MAX_BATCH = 256
"""The tiny stand-in's size: that of sprites-vae."""


@dataclass(frozen=True)
class ChosenModel:
    """The bundle the benchmark serves and where it came from ("zoo" or "tiny")."""

    bundle: Bundle
    source: str

    @property
    def name(self) -> str:
        return self.bundle.spec.name

    def facts(self) -> dict[str, Any]:
        spec = self.bundle.spec
        return {
            "name": spec.name,
            "source": self.source,
            "path": str(self.bundle.root),
            "latent_dim": spec.latent_dim,
            "output_shape": list(spec.output.shape),
            "max_batch_size": spec.max_batch_size,
            "has_encoder": spec.encoder is not None,
            "directions": [d.name for d in spec.directions],
            "content_hash": self.bundle.content_hash,
        }


def choose_bundle(cfg: RunConfig, *, seed: int = 0, name: str | None = None) -> ChosenModel:
    """The zoo sprites-vae when present and unconditional (or forced), else the tiny stand-in
    built in work_dir."""
    zoo = load_bundle(ZOO_SPRITES) if (ZOO_SPRITES / SPEC_FILE).is_file() else None
    usable = zoo is not None and zoo.spec.condition is None
    if cfg.model == "zoo" or (cfg.model == "auto" and usable):
        if zoo is None or not usable:
            raise FileNotFoundError(f"{ZOO_SPRITES / SPEC_FILE}: --model zoo needs a trained, "
                                    "unconditional sprites-vae bundle (the scenarios send no "
                                    "class labels)")
        return ChosenModel(zoo, "zoo")
    tiny_name = name or "tiny-sprites"
    out = cfg.work_dir / "bundles" / f"{tiny_name}-{seed}"
    bundle = build_tiny_bundle(out, name=tiny_name, seed=seed, latent_dim=STANDIN_LATENT_DIM,
                               shape=STANDIN_SHAPE, max_batch_size=STANDIN_MAX_BATCH)
    return ChosenModel(bundle, "tiny")


class Registries:
    """Throw-away sqlite MLflow registries under `root`, each a copy of one initialised empty
    database (creating MLflow's schema takes seconds; copying it takes milliseconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._template: Path | None = None

    def _empty_db(self) -> Path:
        from latentserve.registry.store import RegistryClient

        if self._template is None:
            for noisy in ("mlflow", "alembic"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            db = self.root / "template" / "mlflow.db"
            db.parent.mkdir(parents=True, exist_ok=True)
            RegistryClient(_sqlite_uri(db), create=True).list_models()
            self._template = db
        return self._template

    def create(self, label: str, versions: Mapping[str, Sequence[Path]],
               alias_version: int = 1) -> str:
        """A fresh registry holding each model's bundles as versions 1, 2, … in order
        (`force`: identical bundles still become new versions), with `production` at
        `alias_version`. Returns its URI."""
        from latentserve.registry.store import RegistryClient

        db = self.root / label / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=False)
        shutil.copyfile(self._empty_db(), db)
        client = RegistryClient(_sqlite_uri(db))
        for name, dirs in versions.items():
            for bundle_dir in dirs:
                client.register(bundle_dir, name, force=True)
            client.set_alias(name, PRODUCTION, alias_version)
        return _sqlite_uri(db)


def _sqlite_uri(db: Path) -> str:
    return f"sqlite:///{db.resolve()}"
