"""Picks the backend implementation named by `LATENTSERVE_BACKEND` for a bundle version."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.base import Backend
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.settings import Settings

if TYPE_CHECKING:
    from latentserve.service.backends.triton_leases import TritonLeases

BackendFactory = Callable[[Bundle, int], Backend]
"""Builds an unloaded backend for (bundle, registry version)."""


def backend_factory(
    settings: Settings,
    metrics: ServiceMetrics | None = None,
    leases: TritonLeases | None = None,
) -> BackendFactory:
    """A factory for the configured backend kind (`embedded` or `triton`); Triton backends
    share `leases` (explicit model control with replicas sharing one Triton)."""
    if settings.backend == "triton":
        from latentserve.service.backends.triton import TritonBackend

        def make_triton(bundle: Bundle, version: int) -> Backend:
            backend: Backend = TritonBackend(bundle, settings, version, leases,
                                             metrics=metrics)
            return backend

        return make_triton

    from latentserve.service.backends.embedded import EmbeddedBackend

    def make_embedded(bundle: Bundle, version: int) -> Backend:
        return EmbeddedBackend(bundle, settings, metrics=metrics)

    return make_embedded
