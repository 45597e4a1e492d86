"""ServingState: health and the model gauges computed once, published only when they change."""

from __future__ import annotations

from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.serving_state import ModelState, ServingState, model_state


def test_model_state_reads_the_pool_and_the_alias_table() -> None:
    loaded = [("m", 1), ("m", 2), ("other", 1)]
    aliases = [(("m", "production"), 2), (("m", "staging"), 3), (("other", "production"), 1)]
    state = model_state("m", loaded, aliases, "production")
    assert state == ModelState(2, True, frozenset({("production", 2), ("staging", 3)}))
    assert not model_state("m", [("m", 1)], aliases, "production").serving
    assert model_state("new", [], [], "production") == ModelState(0, False, frozenset())


def test_each_change_is_published_once() -> None:
    metrics = ServiceMetrics()
    health: list[tuple[str, bool]] = []
    state = ServingState(metrics, lambda name, ok: health.append((name, ok)))

    def gauge(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    serving_v1 = ModelState(1, True, frozenset({("production", 1)}))
    state.update("m", serving_v1)
    state.update("m", serving_v1)
    assert health == [("m", True)]
    assert gauge("latentserve_loaded_versions", model="m") == 1
    assert gauge("latentserve_serving_version", model="m", alias="production") == 1

    # a hot swap: v2 loads, the alias moves, v1 retires; the model serves throughout
    state.update("m", ModelState(2, True, frozenset({("production", 1)})))
    state.update("m", ModelState(2, True, frozenset({("production", 2)})))
    state.update("m", ModelState(1, True, frozenset({("production", 2)})))
    assert health == [("m", True)]
    assert gauge("latentserve_loaded_versions", model="m") == 1
    assert gauge("latentserve_serving_version", model="m", alias="production") == 2

    state.update("m", ModelState(0, False, frozenset({("production", 2)})))
    assert health == [("m", True), ("m", False)]


def test_readiness_is_published_when_it_changes() -> None:
    health: list[tuple[str, bool]] = []
    state = ServingState(ServiceMetrics(), lambda name, ok: health.append((name, ok)))
    for ready in (False, False, True, True):
        state.set_ready(ready)
    assert health == [("", False), ("", True)]
