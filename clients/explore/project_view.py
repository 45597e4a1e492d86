"""The explorer's "Project" action: an uploaded picture projected into any model (encoder or
not) with live progress, then edited with the sliders like any other base.

`project_updates` is a Gradio generator handler: while the service searches it shows the
current reconstruction beside the step and loss; at the end the projected latent (and the
picked class) become the view's base. Example (what `app._wire` connects)::

    c["project"].click(functools.partial(project_updates, page), inputs, pictures)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
import numpy.typing as npt

from latentserve.client import LatentServeClientError

from .render import to_hwc
from .uploads import read_upload
from .view import encode_latent

if TYPE_CHECKING:
    from .app import Page

PROGRESS_EVERY = 5
"""Steps between the reconstructions the page shows while projecting."""


def model_pixels(image: npt.NDArray[np.uint8], shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """An upload's pixels as uint8 [1, C, H, W] of the model's output shape (resized)."""
    from PIL import Image

    channels, height, width = shape
    picture = Image.fromarray(np.asarray(image, np.uint8))
    picture = picture.convert("L" if channels == 1 else "RGB").resize(
        (width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(picture, np.uint8)
    return pixels[None, None] if channels == 1 else pixels.transpose(2, 0, 1)[None]


def project_updates(page: Page, state: str, base: str, image: Any) -> Iterator[list[Any]]:
    """Outputs [state, view, view-b, caption, permalink, status]: progress, then the result."""
    skip = [gr.skip() for _ in range(5)]
    try:
        if image is None:
            raise ValueError("upload an image first")
        view = page.view_of(state)
        info = page.explorer.info(view.model)
        pixels = model_pixels(read_upload(image), tuple(info.output_shape))
        scale = page.explorer.scale(view.model, page.explorer.view_px)
        final = None
        for update in page.explorer.client.project_stream(
                view.model, pixels, progress_every=PROGRESS_EVERY, include_reconstruction=True,
                output="uint8"):
            final = update
            if update.done or update.images is None:
                continue
            shown = page.png_file(to_hwc(update.images, scale)[0])
            yield [skip[0], shown, skip[1], skip[2], skip[3],
                   f"Projecting into {view.model}: step {update.step}/{update.steps}, loss "
                   f"{float(update.loss[0]):.5f} ({update.decodes} decodes)"]
        if final is None or not final.done:
            raise ValueError("the projection ended without a result")
        label = final.class_labels[0] if final.class_labels else view.label
        view = dataclasses.replace(view, latent=encode_latent(final.latents), label=label,
                                   strengths={})
        psnr = "" if final.psnr is None else f"PSNR {float(final.psnr[0]):.1f} dB, "
        yield [view.to_query(), *page.pictures(view), page.caption(view),
               page.link(base, view),
               f"Projected the upload into {view.model} ({psnr}{final.step} steps); edit it "
               "with the sliders."]
    except (LatentServeClientError, ValueError, ImportError, KeyError) as err:
        from .app import _message

        yield [*skip, _message(err)]
