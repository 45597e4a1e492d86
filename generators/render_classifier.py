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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from latentserve.core.arrays import F32, F64, I64

TRAIN_RENDERS = 1500
TEST_RENDERS = 600


class RenderClassifier:
    """Class index of an image from `features(images)`."""

    def __init__(self, model: Pipeline, features: Callable[[npt.ArrayLike], F64],
                 accuracy: float) -> None:  # fmt: skip
        self.model = model
        self.features = features
        self.accuracy = accuracy
        """Accuracy on TEST_RENDERS held-out renders."""

    @classmethod
    def fit(cls, features: Callable[[npt.ArrayLike], F64],
            draw: Callable[[int, int], tuple[F32, I64]]) -> RenderClassifier:  # fmt: skip
        """Fit on TRAIN_RENDERS renders of draw(n, stream 0), score on draw(n, stream 1)."""
        images, classes = draw(TRAIN_RENDERS, 0)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=5000))
        model.fit(features(images), classes)
        test, test_classes = draw(TEST_RENDERS, 1)
        accuracy = float(np.mean(model.predict(features(test)) == test_classes))
        return cls(model, features, accuracy)

    def predict(self, images: npt.ArrayLike) -> I64:
        """Class index per image."""
        return np.asarray(self.model.predict(self.features(images)), np.int64)
