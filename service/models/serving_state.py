"""Health and the model gauges: computed in one place, published only when they change.

A model's state is how many of its versions are loaded, whether its default alias's version is
among them (its gRPC health), and the version each alias in use resolves to. The pool and the
alias table report every change of a model (`ServingState.update`); what differs from the last
published state goes to /metrics and the health service, once. A hot swap thus leaves health
untouched (the model serves throughout) and moves the gauges as the versions load and unload.
Example::

    state = ServingState(metrics, on_health)
    state.update("tiny", model_state("tiny", pool.keys(), aliases.items(), "production"))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import Key

HealthHook = Callable[[str, bool], None]
"""Called with (service name, serving?) whenever a model's or the overall readiness changes."""


@dataclass(frozen=True)
class ModelState:
    """What is published about one model."""

    loaded: int
    """Loaded (not retired) versions."""
    serving: bool
    """The default alias resolves to a loaded version."""
    versions: frozenset[tuple[str, int]]
    """(alias, version) for each alias of the model in use here."""


def model_state(name: str, loaded: Iterable[Key], aliases: Iterable[tuple[tuple[str, str], int]],
                default_alias: str) -> ModelState:
    """The state of model `name` given the loaded versions and the alias table."""
    mine = {v for n, v in loaded if n == name}
    versions = frozenset((a, v) for (n, a), v in aliases if n == name)
    default = dict(versions).get(default_alias)
    return ModelState(len(mine), default is not None and default in mine, versions)


class ServingState:
    """The last published state of every model and of the whole service."""

    def __init__(self, metrics: ServiceMetrics, on_health: HealthHook | None = None) -> None:
        self._metrics = metrics
        self._on_health = on_health or (lambda _name, _ok: None)
        self._published: dict[str, ModelState] = {}
        self._ready: bool | None = None

    def set_ready(self, ready: bool) -> None:
        """The service's overall health (the default model served)."""
        if ready != self._ready:
            self._ready = ready
            self._on_health("", ready)

    def update(self, name: str, state: ModelState) -> None:
        """Publish what changed in `name`'s state since it was last published."""
        before = self._published.get(name)
        if state == before:
            return
        self._published[name] = state
        if before is None or state.loaded != before.loaded:
            self._metrics.loaded_versions.labels(model=name).set(state.loaded)
        for alias, version in sorted(state.versions - (before.versions if before else set())):
            self._metrics.serving_version.labels(model=name, alias=alias).set(version)
        if before is None or state.serving != before.serving:
            self._on_health(name, state.serving)
