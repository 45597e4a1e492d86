"""The same requests give the same answers on the embedded and the Triton backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import Settings
from tests.fixtures.service import service_settings


@pytest.fixture(scope="module")
def both(registry_uri: str, triton_settings: Settings,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Client]]:
    triton = {k: getattr(triton_settings, k)
              for k in ("backend", "triton_url", "triton_flavor", "triton_model_control")}
    cache: Path = tmp_path_factory.mktemp("parity")
    with BackgroundServer(service_settings(registry_uri, cache / "e")) as embedded, \
            BackgroundServer(service_settings(registry_uri, cache / "t", **triton)) as on_triton, \
            Client(embedded.address) as a, Client(on_triton.address) as b:
        yield a, b


CALLS = [
    ("sample", {"model": "tiny", "n": 40, "seed": 3, "truncation_psi": 0.7}),
    ("sample", {"model": "tiny-cond", "n": 6, "seed": 1, "class_labels": [0, 1, 2, 0, 1, 2]}),
    ("interpolate", {"model": "tiny", "seeds": [1, 2, 3], "steps": 9, "method": "slerp"}),
    ("edit", {"model": "tiny", "seeds": [4, 5], "direction": "d0", "strengths": [-2, 0, 2],
              "conditional_on": ["pc0"]}),
    # two-stage: z → w on the backend's mapping model, truncation around w̄, decode in W
    ("sample", {"model": "tiny-w", "n": 40, "seed": 3, "truncation_psi": 0.7}),
    ("interpolate", {"model": "tiny-w", "seeds": [1, 2, 3], "steps": 9, "method": "lerp",
                     "truncation_psi": 0.5}),
    ("edit", {"model": "tiny-w", "seeds": [4, 5], "direction": "d0", "strengths": [-2, 0, 2]}),
]


@pytest.mark.parametrize(("method", "kwargs"), CALLS,
                         ids=[f"{c[0]}-{c[1]['model']}" for c in CALLS])
def test_generate_parity(both: tuple[Client, Client], method: str, kwargs: dict) -> None:
    embedded, triton = both
    a = getattr(embedded, method)(**kwargs)
    b = getattr(triton, method)(**kwargs)
    np.testing.assert_array_equal(a.latents, b.latents)
    assert a.images is not None and b.images is not None
    assert float(np.max(np.abs(a.images - b.images))) <= 1e-5


def test_encode_parity(both: tuple[Client, Client]) -> None:
    embedded, triton = both
    images = embedded.sample("tiny", n=20, seed=9).images
    assert images is not None
    za = embedded.encode("tiny", images).latents
    zb = triton.encode("tiny", images).latents
    assert float(np.max(np.abs(za - zb))) <= 1e-5


def test_two_stage_latents_are_bit_identical(both: tuple[Client, Client]) -> None:
    """Seeded W codes: the same z, the same mapping ONNX on either backend, the same bits."""
    embedded, triton = both
    a = embedded.sample("tiny-w", n=20, seed=9, truncation_psi=0.6)
    b = triton.sample("tiny-w", n=20, seed=9, truncation_psi=0.6)
    assert a.latent_space == b.latent_space == "w" and a.latents.shape == (20, 6)
    np.testing.assert_array_equal(a.latents, b.latents)
    assert a.images is not None and b.images is not None
    assert float(np.max(np.abs(a.images - b.images))) <= 1e-5
    wa = embedded.encode("tiny-w", a.images).latents
    wb = triton.encode("tiny-w", a.images).latents
    assert wa.shape == (20, 6) and float(np.max(np.abs(wa - wb))) <= 1e-5
