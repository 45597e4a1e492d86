"""Where the registry and the bundle cache are: the settings every registry user shares.

Read from `LATENTSERVE_*` env vars; the service's `Settings` extends this class, so
`latentserve serve`, the registry commands and promotion agree on the same names. Example::

    LATENTSERVE_REGISTRY_URI=sqlite:////tmp/mlflow.db latentserve registry list
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path(".latentserve")
"""Where `make run` keeps the embedded registry and the bundle cache (relative to the cwd)."""


def default_registry_uri(state_dir: Path = DEFAULT_STATE_DIR) -> str:
    """The embedded sqlite MLflow registry under the state dir, as an absolute `sqlite:///` URI."""
    return f"sqlite:///{(state_dir / 'registry' / 'mlflow.db').resolve()}"


class RegistrySettings(BaseSettings):
    """Registry location and bundle cache; env prefix `LATENTSERVE_`."""

    model_config = SettingsConfigDict(env_prefix="LATENTSERVE_", extra="ignore")

    registry_uri: str = Field(
        default_factory=default_registry_uri,
        description="MLflow tracking/registry URI; default: the embedded sqlite registry "
        "under .latentserve/registry.",
    )
    cache_dir: Path = Field(
        DEFAULT_STATE_DIR / "cache", description="Where downloaded bundles are kept."
    )


def default_zoo_dir() -> Path:
    """`generators/zoo` beside the registry package's folder: the checkout's zoo in an editable
    install (`registry/` → `generators/zoo`), the installed one beside an installed
    `latentserve-generators` (`latentserve/registry/` → `latentserve/generators/zoo`). Found
    without importing the generators (no torch) and whatever the current folder."""
    return Path(__file__).resolve().parent.parent / "generators" / "zoo"


class ZooSettings(BaseSettings):
    """Where the shipped bundles are that `latentserve registry init` (and `make run`)
    registers; env prefix `LATENTSERVE_`."""

    model_config = SettingsConfigDict(env_prefix="LATENTSERVE_", extra="ignore")

    zoo_dir: Path = Field(
        default_factory=default_zoo_dir,
        description="Folder whose subfolders are the bundles `registry init` registers "
        "(option --zoo); default: the checkout's generators/zoo.",
    )
