"""The projection benchmark's pictures the models never produced."""

from __future__ import annotations

import numpy as np

from bench.project_data import never_produced, other_scenes
from latentserve.generators.shapes3d_measures import SCENE_MEASURES


def test_other_scenes_are_seeded_images_of_the_shapes_they_name() -> None:
    images, labels = other_scenes(120, seed=5)
    again, _ = other_scenes(120, seed=5)
    assert images.shape == (120, 3, 64, 64) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, again)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    # A classifier fitted on the training renderer's scenes reads them as their class.
    assert np.mean(SCENE_MEASURES.classify(images) == labels) >= 0.85


def test_never_produced_mixes_data_spec_renders_and_scenes_drawn_by_us() -> None:
    images, labels, what = never_produced("shapes3d", 10, seed=5)
    assert images.shape == (10, 3, 64, 64) and labels.shape == (10,)
    assert what == "5 data-spec renders + 5 PIL-drawn scenes"
    np.testing.assert_array_equal(images[5:], other_scenes(5, seed=5)[0])
