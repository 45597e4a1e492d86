"""The generator under test and the throw-away MLflow registries the benchmark services read.

The shipped `sprites-vae` (generators/zoo/sprites-vae; class-conditional, 3 shapes) is used
when it exists; otherwise a tiny analytic unconditional generator of a similar size (latent 10,
1×64×64, max batch 256) stands in, and the results say so. For a conditional model every path
(service, tritonclient, in-process onnxruntime, peers) sends the same labels: item k of a
request whose first item has index `start` gets class (start + k) mod num_classes. Example::

    choice = choose_bundle(cfg)               # ChosenModel: bundle + where it came from
    choice.labels(4, start=1)                 # [1, 2, 0, 1] for 3 classes; None if unconditional
    uri = Registries(work / "registries").create("main", {choice.name: [choice.bundle.root]})
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.config import ZOO_SPRITES, RunConfig
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE
from tests.fixtures.tiny import build_tiny_bundle

PRODUCTION = "production"
STANDIN_LATENT_DIM = 10
STANDIN_SHAPE = (1, 64, 64)
STANDIN_MAX_BATCH = 256
"""The tiny stand-in's size (sprites-vae's output and batch limit; its latent is 4)."""


@dataclass(frozen=True)
class ChosenModel:
    """The bundle the benchmark serves and where it came from ("zoo", "tiny" or "realistic");
    `extra`: more facts for the report (how the realistic decoder was exported)."""

    bundle: Bundle
    source: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.bundle.spec.name

    @property
    def num_classes(self) -> int:
        """0 for an unconditional generator."""
        return self.bundle.spec.num_classes

    def labels(self, n: int, start: int = 0) -> list[int] | None:
        """Class labels of an n-item request (item k: (start + k) mod num_classes), or None
        when the model is unconditional (requests then carry no labels)."""
        if not self.num_classes:
            return None
        return [(start + k) % self.num_classes for k in range(n)]

    def label_array(self, n: int, start: int = 0) -> npt.NDArray[np.int64] | None:
        """`labels` as the decoder's int64 [n] input, or None when unconditional."""
        labels = self.labels(n, start)
        return None if labels is None else np.asarray(labels, dtype=np.int64)

    def decoder_feed(self, z: npt.NDArray[np.float32], start: int = 0
                     ) -> dict[str, npt.NDArray[Any]]:
        """The decoder's ONNX inputs for latents `z` (plus labels when conditional)."""
        dec = self.bundle.spec.decoder
        feed: dict[str, npt.NDArray[Any]] = {dec.input: z}
        labels = self.label_array(len(z), start)
        if labels is not None and dec.condition_input is not None:
            feed[dec.condition_input] = labels
        return feed

    def facts(self) -> dict[str, Any]:
        spec = self.bundle.spec
        return {
            "name": spec.name,
            "source": self.source,
            "path": str(self.bundle.root),
            "latent_dim": spec.latent_dim,
            "output_shape": list(spec.output.shape),
            "max_batch_size": spec.max_batch_size,
            "num_classes": spec.num_classes,
            "labels": "item k of a request starting at index i: (i + k) mod num_classes"
            if spec.num_classes else None,
            "has_encoder": spec.encoder is not None,
            "directions": [d.name for d in spec.directions],
            "content_hash": self.bundle.content_hash,
            **self.extra,
        }


def choose_bundle(cfg: RunConfig, *, seed: int = 0, name: str | None = None) -> ChosenModel:
    """The zoo sprites-vae when present (or forced), else the tiny stand-in built in
    work_dir; `--model realistic`: the DCGAN decoder (`bench.realistic`)."""
    if cfg.model == "realistic":
        from bench.realistic import realistic_model

        return realistic_model(cfg)
    zoo = load_bundle(ZOO_SPRITES) if (ZOO_SPRITES / SPEC_FILE).is_file() else None
    if cfg.model == "zoo" or (cfg.model == "auto" and zoo is not None):
        if zoo is None:
            raise FileNotFoundError(f"{ZOO_SPRITES / SPEC_FILE}: --model zoo needs the trained "
                                    "sprites-vae bundle")
        return ChosenModel(zoo, "zoo")
    tiny_name = name or "tiny-sprites"
    out = cfg.work_dir / "bundles" / f"{tiny_name}-{seed}"
    bundle = build_tiny_bundle(out, name=tiny_name, seed=seed, latent_dim=STANDIN_LATENT_DIM,
                               shape=STANDIN_SHAPE, max_batch_size=STANDIN_MAX_BATCH)
    return ChosenModel(bundle, "tiny")


class Registries:
    """Throw-away sqlite MLflow registries under `root`, each a copy of one initialised empty
    database (creating MLflow's schema takes seconds; copying it takes milliseconds).
    `template_from`: share that instance's empty database (made once for both)."""

    def __init__(self, root: Path, template_from: Registries | None = None) -> None:
        self.root = root
        self._template: Path | None = None
        self._template_from = template_from

    def _empty_db(self) -> Path:
        from latentserve.registry.store.mlflow_store import RegistryClient

        if self._template is None and self._template_from is not None:
            self._template = self._template_from._empty_db()
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
        from latentserve.registry.store.mlflow_store import RegistryClient

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
