"""Parts of a trained bundle besides the networks: the preview grid, the provenance record,
and the checks done before training starts. Example::

    cfg = prepare_run(FactorConfig(), Path("generators/zoo/sprites-vae"), epochs=None, seed=0)
    png = grid_png(images, cols=8)           # images float32 [n, 1, H, W] in [0, 1]
    provenance(dataset="...", seed=0, epochs=20, train_seconds=512.3)
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from latentserve.registry.bundle.preview import rgb_grid_png
from latentserve.registry.bundle.spec import SPEC_FILE


class RunConfig(Protocol):
    """What `prepare_run` needs of a training config (a dataclass such as FactorConfig)."""

    @property
    def epochs(self) -> int: ...


C = TypeVar("C", bound=RunConfig)


def prepare_run(cfg: C, out_dir: Path, *, epochs: int | None, seed: int) -> C:
    """The config with `epochs` applied, after failing fast (before any training) on a bad
    epoch count, a negative seed or an output folder that is not a fresh bundle folder."""
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)  # type: ignore[type-var]  # C is a dataclass
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    check_out_dir(out_dir)
    return cfg


def grid_png(images: npt.ArrayLike, cols: int, *, upscale: int = 2, pad: int = 2) -> bytes:
    """Tile one-channel images [n, 1, H, W] in [0, 1] into a PNG (light gaps between tiles)."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1] != 1 or len(x) == 0:
        raise ValueError(f"images: expected [n, 1, H, W] with n > 0, got shape {x.shape}")
    return rgb_grid_png(x, cols, upscale=upscale, pad=pad)


def provenance(
    *, dataset: str, seed: int, epochs: int, train_seconds: float, **extra: Any
) -> dict[str, Any]:
    """The `provenance` block of a spec: git sha (when in a checkout), data, seed, versions."""
    record: dict[str, Any] = {
        "git_sha": git_sha(),
        "dataset": dataset,
        "seed": seed,
        "epochs": epochs,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    record.update(extra)
    return record


def git_sha(where: Path | None = None) -> str | None:
    """HEAD commit of the checkout holding this package (None outside a git checkout)."""
    cwd = where or Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output path that is a file or a non-empty folder without a bundle in it."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: the output bundle folder exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / SPEC_FILE).is_file():
        raise ValueError(
            f"{path}: the output folder is not empty and holds no {SPEC_FILE}; refusing to "
            "replace it"
        )
