"""The `latentserve` command: one root that mounts every command group, each imported lazily.

| command | group's module | extra it needs |
|---|---|---|
| `models`, `info`, `sample`, `interpolate`, `edit` | `latentserve.cli.client_commands` | none |
| `serve` | `latentserve.service.cli` | `server` |
| `registry …` | `latentserve.registry.cli.registry` + `latentserve.promotion.cli` | `server` |
| `triton …` | `latentserve.service.devtools.triton_cli` | none (it builds its own venv) |
| `train …` | `latentserve.generators.cli` | `server,train` (bundles are written by the registry) |

A group is imported only when it runs (or its help is shown); when its extra is not installed
the command prints one line naming the extra instead of a traceback. Example::

    latentserve --version
    latentserve sample --model sprites-vae --n 16 --out grid.png
"""

from __future__ import annotations

from .root import app, main

__all__ = ["app", "main"]
