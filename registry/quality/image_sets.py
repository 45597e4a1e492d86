"""Comparing sets of images: what the promotion's image gates measure, in numpy with features
from an ONNX network the user points at (Inception for real use; any image → vector network).

- `drift`: per-item RMS distance between two generators' images of the same latents, in
  units of the output range (0 = identical pictures, 1 = black ↔ white everywhere);
- `diversity`: mean RMS distance between the images of different samples (a collapsed
  generator draws ~0);
- `frechet_distance` (FID when the features are Inception's pool3) and `precision_recall`
  (Kynkäänniemi et al. 2019: k-NN manifolds of the real and the generated features).

Example::

    net = FeatureNetwork(Path("inception.onnx"))
    real = net.features(load_image_folder(Path("faces/"), limit=1000))
    fake = net.features(to_unit(images, (-1.0, 1.0)))
    frechet_distance(real, fake), precision_recall(real, fake, k=3)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from latentserve.core.arrays import F32, F64
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.quality.onnx_generator import cpu_session

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


def to_unit(images: npt.ArrayLike, output_range: tuple[float, float] | list[float]) -> F32:
    """Images in `output_range` mapped to [0, 1] (clipped)."""
    lo, hi = float(output_range[0]), float(output_range[1])
    out: F32 = np.clip((np.asarray(images, np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return out


def drift(a: F32, b: F32) -> F64:
    """Per-item RMS distance between two batches of [0, 1] images of the same shape."""
    diff = a.reshape(len(a), -1).astype(np.float64) - b.reshape(len(b), -1)
    out: F64 = np.sqrt(np.mean(diff**2, axis=1))
    return out


def diversity(images: F32) -> float:
    """Mean RMS distance between every pair of [0, 1] images (0 for identical pictures)."""
    x = images.reshape(len(images), -1).astype(np.float64)
    if len(x) < 2:
        return 0.0
    sq = np.sum(x**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0) / x.shape[1]
    upper = np.triu_indices(len(x), k=1)
    return float(np.mean(np.sqrt(d2[upper])))


def load_image_folder(path: Path, *, limit: int) -> F32:
    """Reference images as [n, C, H, W] in [0, 1]: a folder of image files (sorted by name;
    RGB, or grey when every file is grey), or a .npy/.npz array (uint8 [n, H, W, C] or float
    [n, C, H, W] in [0, 1]; an .npz's `images` entry). Images of different sizes are resized
    to the first one's size."""
    path = Path(path)
    if path.is_file() and path.suffix in (".npy", ".npz"):
        return _array_images(path, limit)
    if not path.is_dir():
        raise BundleError(f"reference.images: {path} is neither a folder of images nor a "
                          ".npy/.npz file")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if len(files) < 2:
        raise BundleError(f"reference.images: {path} holds {len(files)} image files; at "
                          "least 2 are needed")
    opened = [Image.open(p) for p in files]
    mode = "L" if all(im.mode in ("L", "1", "I;16") for im in opened) else "RGB"
    size = opened[0].size
    arrays = [np.asarray(im.convert(mode).resize(size, Image.Resampling.BILINEAR), np.float32)
              for im in opened]
    stacked = np.stack(arrays) / 255.0
    out: F32 = (stacked[:, None] if mode == "L" else stacked.transpose(0, 3, 1, 2)).astype(
        np.float32)
    return out


def _array_images(path: Path, limit: int) -> F32:
    try:
        loaded = np.load(path, allow_pickle=False)
        raw = loaded["images"] if path.suffix == ".npz" else loaded
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"reference.images: cannot read {path} ({exc})") from None
    a = np.asarray(raw)[:limit]
    if a.ndim != 4:
        raise BundleError(f"reference.images: {path} holds shape {list(a.shape)}; expected "
                          "[n, H, W, C] uint8 or [n, C, H, W] float")
    if a.dtype == np.uint8:
        out: F32 = (a.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
        return out
    return np.clip(a.astype(np.float32), 0.0, 1.0)


class FeatureNetwork:
    """An ONNX network from images [B, C, H, W] to features [B, D] (or [B, D, 1, 1]).

    Images arrive in [0, 1] and are mapped to `input_range` (Inception ports often want
    [-1, 1]); they are resized (bilinear) to the network's fixed H, W when it has one, and
    grey images are repeated to 3 channels (or RGB averaged to 1) as the network takes."""

    def __init__(self, path: Path, *, input_name: str | None = None,
                 output_name: str | None = None,
                 input_range: tuple[float, float] = (0.0, 1.0), batch: int = 32) -> None:
        try:
            self._session = cpu_session(Path(path))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"reference.features: cannot load {path} as an ONNX network "
                              f"({str(exc).strip().splitlines()[0] if str(exc) else exc})"
                              ) from None
        inputs = self._session.get_inputs()
        self._input = input_name or inputs[0].name
        self._output = output_name or self._session.get_outputs()[0].name
        shape = next(i.shape for i in inputs if i.name == self._input)
        self._channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else None
        fixed = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        self._size = (int(shape[2]), int(shape[3])) if fixed else None
        self._range = input_range
        self._batch = batch

    def features(self, images: F32) -> F64:
        """Features [n, D] of [0, 1] images [n, C, H, W]."""
        x = np.asarray(images, np.float32)
        if self._channels == 3 and x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        elif self._channels == 1 and x.shape[1] == 3:
            x = x.mean(axis=1, keepdims=True)
        if self._size is not None and tuple(x.shape[2:]) != self._size:
            x = _resize(x, self._size)
        lo, hi = self._range
        x = (lo + (hi - lo) * x).astype(np.float32)
        out = []
        try:
            for start in range(0, len(x), self._batch):
                got = self._session.run([self._output], {self._input: x[start:start + self._batch]})
                out.append(np.asarray(got[0], np.float64).reshape(min(self._batch,
                                                                      len(x) - start), -1))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"reference.features: the feature network failed on images of "
                              f"shape {list(x.shape[1:])} ({first})") from None
        return np.concatenate(out)


def _resize(x: F32, size: tuple[int, int]) -> F32:
    """Bilinear resize of [n, C, H, W] to (H', W'), channel by channel."""
    h, w = size
    out = np.empty((len(x), x.shape[1], h, w), np.float32)
    for i, image in enumerate(x):
        for c, plane in enumerate(image):
            out[i, c] = np.asarray(Image.fromarray(plane, mode="F").resize(
                (w, h), Image.Resampling.BILINEAR), np.float32)
    return out


def frechet_distance(a: F64, b: F64) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½): the Fréchet distance of Gaussians fitted
    to two feature sets (FID on Inception features); computed through symmetric
    eigendecompositions, so no complex square roots."""
    if len(a) < 2 or len(b) < 2:
        raise BundleError("reference: the Fréchet distance needs at least 2 items per set")
    mu = a.mean(axis=0) - b.mean(axis=0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(ca)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root @ cb @ root)
    cross = float(np.sum(np.sqrt(np.clip(middle, 0.0, None))))
    return max(float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * cross), 0.0)


def precision_recall(real: F64, fake: F64, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision = share of
    generated features inside some real feature's k-NN ball, recall = share of real features
    inside some generated one's."""
    if min(len(real), len(fake)) <= k:
        raise BundleError(f"reference: precision/recall with k = {k} needs more than {k} "
                          "items per set")
    return _coverage(real, fake, k), _coverage(fake, real, k)


def _distances(a: F64, b: F64) -> F64:
    d2 = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2 * a @ b.T
    out: F64 = np.sqrt(np.maximum(d2, 0.0))
    return out


def _coverage(manifold: F64, probes: F64, k: int) -> float:
    """Share of `probes` within the k-NN radius of at least one point of `manifold`."""
    within = _distances(manifold, manifold)
    radii = np.sort(within, axis=1)[:, k]          # column 0 is the point itself
    inside = _distances(probes, manifold) <= radii[None, :]
    return float(np.mean(np.any(inside, axis=1)))


def finite_or_error(value: float, what: str) -> float:
    """`value`, or a BundleError naming `what` when it is not finite."""
    if not math.isfinite(value):
        raise BundleError(f"reference: {what} is not finite")
    return value
