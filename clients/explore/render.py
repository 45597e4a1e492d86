"""The explorer's pictures, made through the SDK only: seed grids, edited views, paths, encodes.

No UI code here: each method takes a `View` (and a pinned model `name:version`) and returns
uint8 pixels, so the page, its tests and a notebook see the same images. Repeated views are
answered from a small LRU cache (the service caches exact requests too). Example::

    with Client("127.0.0.1:50051") as client:
        explorer = Explorer(client)
        model = explorer.pin("sprites-vae@production")        # 'sprites-vae:3'
        pixels = explorer.view_image(model, View(seed=7, strengths={"scale": 1.5}))
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from latentserve.client import Client, DirectionInfo, GenerateResult, ModelInfo

from .view import View

U8 = npt.NDArray[np.uint8]

GRID_SIZE = 12
"""Seeds shown by the seed browser (start … start + GRID_SIZE - 1)."""


def short_unit(unit: str, limit: int = 60) -> str:
    """What strength 1 means, from the head of a direction's unit text (up to its first ';'
    or '(' and `limit` chars), without the "1.0 =" the text may open with: 'a 12th of a turn'
    from '1.0 = a 12th of a turn (latent distance 0.1667); …'."""
    head = unit.split(";", 1)[0].split(" (", 1)[0].strip()
    head = re.sub(r"^(strength\s+)?1(\.0*)?\s*=\s*", "", head)
    if re.match(r"^1 (σ|std)\b", head):  # '1 σ of posterior samples of …': the σ is the unit
        return "1 σ"
    return head if len(head) <= limit else head[:limit - 1].rstrip() + "…"


def slider_label(d: DirectionInfo, limit: int = 40) -> str:
    """A direction slider's label: its name and what 1 on the slider means."""
    unit = short_unit(d.unit, limit) if d.unit else ""
    return f"{d.name} (1 = {unit})" if unit else d.name


def quality_text(d: DirectionInfo) -> str:
    """One line on how well `d` does what it names (the bundle's measurement on images),
    then its method and (the head of) its unit."""
    tail = f"{d.method}; 1 = {short_unit(d.unit)}" if d.unit else d.method
    q = d.quality
    if q is None:
        return f"quality not measured · {tail}"
    verdict = "reliable" if q.reliable else "UNRELIABLE"
    text = (f"{verdict}: moves {q.measure} (Spearman ρ {q.spearman_within:.2f} within seeds, "
            f"{q.spearman_pooled:.2f} pooled)")
    if q.leak_measure:
        text += (f"; leaks into {q.leak_measure} {q.leak_plain:.2f} "
                 f"({q.leak_conditional:.2f} when held)")
    return f"{text} · {tail}"


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    """Display pixels [H, W] or [H, W, C] as PNG file bytes (needs Pillow, as the page does)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="PNG")
    return out.getvalue()


def to_hwc(images: npt.NDArray[Any], scale: int = 1) -> list[U8]:
    """uint8 [n, C, H, W] → n arrays [H, W] (grey) or [H, W, C], enlarged `scale`× by
    repeating pixels (so the page shows exact model pixels)."""
    out = []
    for item in np.asarray(images, np.uint8):
        hwc = item[0] if item.shape[0] == 1 else item.transpose(1, 2, 0)
        if scale > 1:
            hwc = np.repeat(np.repeat(hwc, scale, axis=0), scale, axis=1)
        out.append(np.ascontiguousarray(hwc))
    return out


class Explorer:
    """Makes the explorer's pictures with one SDK `Client` (thread-safe; cached)."""

    def __init__(self, client: Client, *, view_px: int = 256, thumb_px: int = 96,
                 cache_items: int = 256) -> None:
        self.client = client
        self.view_px = view_px
        self.thumb_px = thumb_px
        self._edit_chain = functools.lru_cache(maxsize=cache_items)(self._edit_chain_uncached)
        self._info = functools.lru_cache(maxsize=64)(self._info_uncached)

    # -- models -------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """`name@alias` for each alias of each served model, then bare names."""
        refs: list[str] = []
        for m in self.client.list_models():
            refs += [f"{m.name}@{alias}" for alias in m.aliases]
            refs += [f"{m.name}:{v}" for v in m.versions]
        return refs

    def pin(self, model: str) -> str:
        """`name:version` that `model` (name, name@alias or name:version) resolves to now."""
        info = self.client.get_model(model)
        return f"{info.model.name}:{info.model.version}"

    def info(self, pinned: str) -> ModelInfo:
        """The description of a pinned version (cached: a pinned version does not change)."""
        return self._info(pinned)

    def _info_uncached(self, pinned: str) -> ModelInfo:
        return self.client.get_model(pinned)

    def scale(self, pinned: str, px: int) -> int:
        """The integer enlargement that brings the model's images near `px` pixels."""
        shape = self.info(pinned).output_shape
        return max(1, px // max(shape[-1], shape[-2]))

    def _labels(self, pinned: str, view: View) -> int | None:
        return view.label if self.info(pinned).is_conditional else None

    # -- pictures -----------------------------------------------------------------------
    def seed_grid(self, pinned: str, view: View) -> list[tuple[U8, str]]:
        """The seed browser: (thumbnail, 'seed s') for seeds start … start + GRID_SIZE - 1,
        each the unedited keyframe of its seed at the view's ψ and class."""
        seeds = list(range(view.start, view.start + GRID_SIZE))
        info = self.info(pinned)
        labels = self._labels(pinned, view)
        if info.directions:  # one call: every seed at strength 0 of any direction
            result = self.client.edit(pinned, seeds=seeds, direction=info.directions[0].name,
                                      strengths=[0.0], truncation_psi=view.psi,
                                      class_labels=labels, output="uint8")
            images = result.images
        else:
            images = np.concatenate([self.client.sample(
                pinned, n=1, seed=s, truncation_psi=view.psi, class_labels=labels,
                output="uint8").images for s in seeds])
        assert images is not None
        thumbs = to_hwc(images, self.scale(pinned, self.thumb_px))
        return [(img, f"seed {s}") for img, s in zip(thumbs, seeds, strict=True)]

    def view_result(self, pinned: str, view: View) -> GenerateResult:
        """The selected base (seed or encoded latent) moved by every active direction in turn
        (each step holds the view's held directions fixed, except itself).

        With one active direction this is exactly `client.edit(pinned, seeds=[seed],
        direction=d, strengths=[a], conditional_on=held, truncation_psi=ψ, output="uint8")`.
        """
        latent = view.base_latent()
        base = None if latent is None else tuple(float(x) for x in latent.reshape(-1))
        return self._edit_chain(pinned, view.seed, base, view.psi, self._labels(pinned, view),
                                tuple(view.active()), tuple(sorted(view.held)),
                                view.layer_range())

    def view_image(self, pinned: str, view: View) -> U8:
        """The edited view as display pixels [H, W] or [H, W, C] (enlarged)."""
        result = self.view_result(pinned, view)
        assert result.images is not None
        return to_hwc(result.images, self.scale(pinned, self.view_px))[0]

    def _edit_chain_uncached(
        self, pinned: str, seed: int, base: tuple[float, ...] | None, psi: float,
        labels: int | None, active: tuple[tuple[str, float], ...], held: tuple[str, ...],
        layers: tuple[int, int] | None = None,
    ) -> GenerateResult:
        source: dict[str, Any] = ({"seeds": [seed], "truncation_psi": psi} if base is None
                                  else {"latents": np.asarray([base], np.float32)})
        if not active:
            if base is None:
                return self.client.sample(pinned, n=1, seed=seed, truncation_psi=psi,
                                          class_labels=labels, output="uint8")
            return self.client.decode(pinned, source["latents"], class_labels=labels,
                                      output="uint8")
        result: GenerateResult | None = None
        for i, (name, strength) in enumerate(active):
            last = i == len(active) - 1
            result = self.client.edit(
                pinned, direction=name, strengths=[strength],
                conditional_on=[h for h in held if h != name], class_labels=labels,
                layers=layers, output="uint8" if last else "latents", **source)
            source = {"latents": result.latents}
        assert result is not None
        return result

    def interpolation(self, pinned: str, view: View,
                      progress: Callable[[int, int], None] | None = None) -> GenerateResult:
        """The keyframe path (streamed; `progress(done, total)` after each chunk)."""
        keys = list(view.keyframes)
        if len(keys) < 2:
            raise ValueError("add at least two keyframes (seeds) to build an interpolation")
        total = (len(keys) - 1) * (view.steps - 1) + 1
        chunks: list[GenerateResult] = []
        for chunk in self.client.stream_interpolate(
                pinned, seeds=keys, steps=view.steps, method=view.method,
                truncation_psi=view.psi, class_labels=self._labels(pinned, view),
                output="uint8"):
            chunks.append(chunk)
            if progress is not None:
                progress(chunk.offset + len(chunk), total)
        return GenerateResult.join(chunks, columns=total)

    def encode(self, pinned: str, image: U8, label: int) -> npt.NDArray[np.float32]:
        """The posterior-mean latent [1, N] of one uploaded picture ([H, W] or [H, W, C],
        any size: it is resized to the model's output size and channels first)."""
        info = self.info(pinned)
        if not info.has_encoder:
            raise ValueError(f"{pinned} has no encoder: pick a model with one to encode images")
        from PIL import Image

        channels, height, width = info.output_shape
        picture = Image.fromarray(np.asarray(image, np.uint8))
        picture = picture.convert("L" if channels == 1 else "RGB").resize(
            (width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(picture, np.uint8)
        nchw = pixels[None, None] if channels == 1 else pixels.transpose(2, 0, 1)[None]
        labels: Sequence[int] | None = [label] if info.is_conditional else None
        return self.client.encode(pinned, nchw, class_labels=labels).latents
