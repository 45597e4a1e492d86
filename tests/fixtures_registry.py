"""Registry fixtures: tiny bundles and real sqlite MLflow registries (pytest plugin module).

- `tiny_bundle` / `tiny_conditional_bundle`: a fresh tiny bundle in `tmp_path` (per test).
- `registry_bundles`: the session's tiny bundles by model name (what `registry_uri` holds).
- `registry_uri`: a session-wide sqlite registry with "tiny", "tiny-cond", "tiny-noenc" and
  "tiny-w" (two-stage: z of 4 → w of 6), each v1 with alias `production`. Treat it as
  read-only; mutate `empty_registry_uri`.
- `empty_registry_uri`: a fresh, empty (but initialised) sqlite registry per test.
- `edit_spec(root, change)`: rewrite a bundle's latentserve.json through `change(raw dict)`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from latentserve.registry.bundle import Bundle
from latentserve.registry.spec import SPEC_FILE
from latentserve.registry.store import RegistryClient, register_bundle
from latentserve.registry.tiny import build_tiny_bundle

TINY_NUM_CLASSES = 3
"""Classes of the conditional tiny generator ("tiny-cond"; labels c0, c1, c2)."""
TINY_W_DIM = 6
"""Size of W of the two-stage tiny generator ("tiny-w"; its z has the default 4)."""


def edit_spec(root: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Rewrite the bundle at `root`'s spec through `change` (it edits the decoded JSON)."""
    raw = json.loads((root / SPEC_FILE).read_text())
    change(raw)
    (root / SPEC_FILE).write_text(json.dumps(raw))


def _sqlite_uri(db: Path) -> str:
    return f"sqlite:///{db.resolve()}"


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Bundle:
    """Unconditional tiny generator with encoder: latent_dim 4, output 1×8×8, model "tiny"."""
    return build_tiny_bundle(tmp_path / "bundles" / "tiny")


@pytest.fixture
def tiny_conditional_bundle(tmp_path: Path) -> Bundle:
    """Class-conditional tiny generator with encoder (3 classes), model "tiny-cond"."""
    return build_tiny_bundle(tmp_path / "bundles" / "tiny-cond", name="tiny-cond",
                             num_classes=TINY_NUM_CLASSES)


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow sqlite database, copied by the registry fixtures
    (creating the MLflow schema takes seconds; copying it takes milliseconds)."""
    db = tmp_path_factory.mktemp("registry-template") / "mlflow.db"
    RegistryClient(_sqlite_uri(db), create=True).list_models()
    return db


@pytest.fixture
def empty_registry_uri(tmp_path: Path, registry_template: Path) -> str:
    """A fresh, empty sqlite registry for this test (artifacts go to its own folder)."""
    db = tmp_path / "registry" / "mlflow.db"
    db.parent.mkdir(parents=True)
    shutil.copyfile(registry_template, db)
    return _sqlite_uri(db)


@pytest.fixture(scope="session")
def registry_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    """The tiny bundles held by `registry_uri`, by model name."""
    root = tmp_path_factory.mktemp("registry-bundles")
    return {
        "tiny": build_tiny_bundle(root / "tiny"),
        "tiny-cond": build_tiny_bundle(root / "tiny-cond", name="tiny-cond",
                                       num_classes=TINY_NUM_CLASSES),
        "tiny-noenc": build_tiny_bundle(root / "tiny-noenc", name="tiny-noenc",
                                        with_encoder=False),
        "tiny-w": build_tiny_bundle(root / "tiny-w", name="tiny-w", w_dim=TINY_W_DIM),
    }


@pytest.fixture(scope="session")
def registry_uri(
    tmp_path_factory: pytest.TempPathFactory,
    registry_template: Path,
    registry_bundles: dict[str, Bundle],
) -> str:
    """Session sqlite registry: "tiny", "tiny-cond", "tiny-noenc", "tiny-w", each v1 @
    production."""
    db = tmp_path_factory.mktemp("registry") / "mlflow.db"
    shutil.copyfile(registry_template, db)
    uri = _sqlite_uri(db)
    for name, bundle in registry_bundles.items():
        register_bundle(uri, bundle.root, name, alias="production")
    return uri
