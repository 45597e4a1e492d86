"""The Shapes3D-spec renderer draws solids: a cube that turns with the azimuth, and a scale
that moves every object's height."""

from __future__ import annotations

import numpy as np

from latentserve.generators.shapes3d import SHAPES, cube_corners, render
from latentserve.generators.shapes3d_measures import measure_scenes, scene_shape_features

ORIENTATIONS = np.array([-30.0, -15.0, 0.0, 15.0, 30.0])


def _scenes(shape: str, scale: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    n = len(scale)
    return render(floor_hue=np.full(n, 0.1), wall_hue=np.full(n, 0.6),
                  object_hue=np.full(n, 0.0), scale=scale, shape=[shape] * n,
                  orientation=orientation)  # fmt: skip


def test_the_cube_silhouette_narrows_as_it_turns_like_a_cube() -> None:
    images = _scenes("cube", np.full(len(ORIENTATIONS), 1.25), ORIENTATIONS)
    width = scene_shape_features(images)[:, 1]
    assert width[2] == width.max()  # a corner faces the camera: widest
    assert (width.max() - width[[0, -1]]).min() / width.max() >= 0.06
    # its outline is the projection of a cube: |cos β| + |sin β| of the side, β = 45° + azimuth
    corners = cube_corners(ORIENTATIONS, np.full(len(ORIENTATIONS), 1.0))
    beta = np.radians(45.0 + ORIENTATIONS)
    assert np.allclose(np.ptp(corners[..., 0], axis=1), np.cos(beta) + np.sin(beta))


def test_the_cube_shows_three_flat_faces() -> None:
    image = _scenes("cube", np.array([1.25]), np.array([10.0]))[0]
    object_pixels = image[0] > image[1] + 0.3  # the red object against a blue/tan room
    levels = np.round(image[0][object_pixels], 2)
    counts = np.unique(levels, return_counts=True)[1]
    assert np.sort(counts)[-3:].sum() >= 0.8 * object_pixels.sum()  # three shades fill it


def test_scale_moves_every_objects_height() -> None:
    scales = np.linspace(0.75, 1.25, 5)
    for shape in SHAPES:
        for orientation in (-30.0, 0.0, 30.0):
            heights = measure_scenes(_scenes(shape, scales, np.full(5, orientation)))["height"]
            assert np.all(np.diff(heights) > 0.5), (shape, orientation, heights)
