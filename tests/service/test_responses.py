"""responses: domain values → latentserve.v1 messages (the version that served, images as asked)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from latentserve.core.tensors import from_tensor
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.store.mlflow_store import ModelRecord
from latentserve.service import responses
from latentserve.v1 import generator_pb2 as pb
from tests.fixtures.models import embedded_lease
from tests.fixtures.registry import TINY_NUM_CLASSES, TINY_W_DIM


async def test_generated_images_come_in_the_asked_format(
        registry_bundles: dict[str, Bundle]) -> None:
    z = np.zeros((2, 4), np.float32)
    images = np.full((2, 1, 8, 8), 0.5, np.float32)
    async with embedded_lease(registry_bundles["tiny"], version=3, alias="staging") as lease:
        floats = await responses.generate_response(lease, z, images, "float32")
        uint8 = await responses.generate_response(lease, z, images, "uint8")
        png = await responses.generate_response(lease, z, images, "png")
        latents = await responses.generate_response(lease, z, None, "latents")
    assert floats.model == pb.ResolvedModel(name="tiny", version=3, alias="staging")
    assert floats.latent_space == pb.LATENT_SPACE_Z
    np.testing.assert_array_equal(from_tensor(floats.latents), z)
    np.testing.assert_array_equal(from_tensor(floats.images), images)
    assert (floats.output_range.min, floats.output_range.max) == (0.0, 1.0)
    assert from_tensor(uint8.images).dtype == np.uint8
    assert len(png.png) == 2 and not png.HasField("images")
    assert Image.open(io.BytesIO(png.png[0])).size == (8, 8)
    assert not latents.HasField("images") and not latents.png
    assert not latents.HasField("output_range")
    np.testing.assert_array_equal(from_tensor(latents.latents), z)


async def test_model_info_describes_the_leased_version(
        registry_bundles: dict[str, Bundle]) -> None:
    async with embedded_lease(registry_bundles["tiny-cond"], version=2) as lease:
        info = responses.model_info(lease, ["production"])
    assert (info.model.name, info.model.version, info.model.alias) == ("tiny-cond", 2,
                                                                       "production")
    assert info.latent_dim == 4 and list(info.output_shape) == [1, 8, 8]
    assert info.has_encoder and info.encoder_conditional
    assert info.num_classes == TINY_NUM_CLASSES and list(info.class_names) == ["c0", "c1", "c2"]
    assert {d.name for d in info.directions} == {"d0", "pc0", "sefa0"}
    assert list(info.aliases) == ["production"] and not info.has_mapping


async def test_two_stage_models_report_their_w_space(
        registry_bundles: dict[str, Bundle]) -> None:
    async with embedded_lease(registry_bundles["tiny-w"]) as lease:
        info = responses.model_info(lease, [])
        encoded = responses.encode_response(lease, np.zeros((1, TINY_W_DIM), np.float32))
    assert info.editing_space == pb.LATENT_SPACE_W and info.has_mapping
    assert info.w_dim == TINY_W_DIM
    assert encoded.latent_space == pb.LATENT_SPACE_W
    assert encoded.model.alias == "production"


def test_list_models_gives_each_model_its_loaded_version() -> None:
    entries = [(ModelRecord("a", [1, 2], {"production": 2}), 2), (ModelRecord("b", [1]), 0)]
    reply = responses.list_models(entries)
    assert [(m.name, list(m.versions), dict(m.aliases), m.loaded_version)
            for m in reply.models] == [("a", [1, 2], {"production": 2}, 2), ("b", [1], {}, 0)]
