"""Classifiers of rendered images fitted on renders only (never on a generator's output), so
they can judge a generator: logistic regression on hand-made, pose-invariant features.
Example::

    clf = RenderClassifier.fit(shape_features, draw)   # draw(n, stream) → (images, classes)
    clf.accuracy, clf.predict(images)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from latentserve.core.arrays import F32, F64, I64

TRAIN_RENDERS = 1500
TEST_RENDERS = 600
BLUR_SIGMA = (0.3, 1.2)
"""Each training render is also seen blurred by a Gaussian of a random width in this range
(pixels), so the classifier judges shape, not sharpness."""


def blurred(images: F32, *, seed: int) -> F32:
    """Each image [C, H, W] blurred spatially by its own random Gaussian width."""
    rng = np.random.default_rng(seed)
    widths = rng.uniform(*BLUR_SIGMA, len(images))
    return np.stack([gaussian_filter(img, sigma=(0.0, w, w)) for img, w in zip(images, widths,
                                                                           strict=True)])


class RenderClassifier:
    """Class index of an image from `features(images)`."""

    def __init__(self, model: Pipeline, features: Callable[[npt.ArrayLike], F64],
                 accuracy: float) -> None:  # fmt: skip
        self.model = model
        self.features = features
        self.accuracy = accuracy
        """Accuracy on TEST_RENDERS held-out renders, half of them blurred."""

    @classmethod
    def fit(cls, features: Callable[[npt.ArrayLike], F64],
            draw: Callable[[int, int], tuple[F32, I64]]) -> RenderClassifier:  # fmt: skip
        """Fit on TRAIN_RENDERS renders of draw(n, stream 0), each also blurred, and score on
        draw(n, stream 1)."""
        images, classes = draw(TRAIN_RENDERS, 0)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=5000))
        model.fit(features(np.concatenate([images, blurred(images, seed=0)])),
                  np.concatenate([classes, classes]))  # fmt: skip
        test, test_classes = draw(TEST_RENDERS, 1)
        half = len(test) // 2
        test = np.concatenate([test[:half], blurred(test[half:], seed=1)])
        accuracy = float(np.mean(model.predict(features(test)) == test_classes))
        return cls(model, features, accuracy)

    def predict(self, images: npt.ArrayLike) -> I64:
        """Class index per image."""
        return np.asarray(self.model.predict(self.features(images)), np.int64)
