"""Where the registry and the bundle cache are: the settings every registry user shares.

Read from `LATENTSERVE_*` env vars; the service's `Settings` extends this class, so
`latentserve serve`, the registry commands and promotion agree on the same names. Example::

    LATENTSERVE_REGISTRY_URI=sqlite:////tmp/mlflow.db latentserve registry list
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR_NAME = ".latentserve"


def default_state_dir() -> Path:
    """Where the embedded registry and the bundle cache live, whatever the current folder.

    In a checkout (an editable install: `pyproject.toml` beside the package folders) it is
    `<checkout>/.latentserve`, the folder `make run` fills; in an installed package it is
    `$XDG_DATA_HOME/latentserve` (`~/.local/share/latentserve`). The setting `state_dir`
    (`LATENTSERVE_STATE_DIR`) overrides both."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "registry").is_dir():
        return checkout / STATE_DIR_NAME
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "latentserve"


DEFAULT_STATE_DIR = default_state_dir()
"""The state folder of this installation (see `default_state_dir`)."""


def default_registry_uri(state_dir: Path | None = None) -> str:
    """The embedded sqlite MLflow registry under the state dir, as an absolute `sqlite:///` URI."""
    root = state_dir if state_dir is not None else default_state_dir()
    return f"sqlite:///{(root / 'registry' / 'mlflow.db').resolve()}"


class RegistrySettings(BaseSettings):
    """Registry location and bundle cache; env prefix `LATENTSERVE_`."""

    model_config = SettingsConfigDict(env_prefix="LATENTSERVE_", extra="ignore")

    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Folder of the embedded registry and the bundle cache.",
    )
    registry_uri: str = Field(
        "",
        description="MLflow tracking/registry URI.",
    )
    cache_dir: Path = Field(
        Path(), description="Where downloaded bundles are kept."
    )

    @model_validator(mode="before")
    @classmethod
    def _under_state_dir(cls, data: Any) -> Any:
        """Unset `registry_uri` and `cache_dir` default to places under `state_dir`."""
        if not isinstance(data, dict):
            return data
        state = Path(data.get("state_dir") or default_state_dir())
        if not data.get("registry_uri"):
            data["registry_uri"] = default_registry_uri(state)
        if not data.get("cache_dir"):
            data["cache_dir"] = state / "cache"
        return data


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
