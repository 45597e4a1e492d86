"""The explorer's W+ controls: the layer range of edits and a style-mixing view.

For models with W+ layers (`ModelInfo.num_ws > 0`) the page shows a "layers" box (START:END;
empty = each direction's own range) that every slider edit then uses, and a style-mixing
section: row seeds × column seeds with the layers START:END taken from the columns
(StyleGAN's figure, through `Client.style_mix`). Example (what `app._wire` connects)::

    c["mix"].click(functools.partial(on_mix, page), [c["state"], c["mix-rows"], ...], out)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
import numpy.typing as npt

from latentserve.client import ModelInfo

from .render import to_hwc

if TYPE_CHECKING:
    from .app import Page


def build_mix_controls(c: dict[str, Any]) -> None:
    """The style-mixing accordion (inside the page's Blocks); hidden until a W+ model loads."""
    with gr.Accordion("Style mixing (W+ models)", open=True, visible=False,
                      elem_id="mix-section") as section, gr.Row():
        c["mix-section"] = section
        with gr.Column(scale=1):
            c["mix-rows"] = gr.Textbox(label="row seeds", value="1,2,3", elem_id="mix-rows")
            c["mix-cols"] = gr.Textbox(label="column seeds", value="4,5", elem_id="mix-cols")
            c["mix-layers"] = gr.Textbox(label="layers from the column seed (START:END)",
                                         value="0:4", elem_id="mix-layers")
            c["mix"] = gr.Button("Mix", elem_id="mix", variant="primary")
        with gr.Column(scale=3):
            c["mix-grid"] = gr.Image(label="rows keep their other layers", elem_id="mix-grid",
                                     format="png", interactive=False, type="numpy")


def w_plus_updates(info: ModelInfo, view_layers: str) -> list[Any]:
    """Updates of [edit layers box, mix section] for a loaded model: shown for W+ only."""
    w_plus = info.num_ws > 0
    hint = f"W+ layers of edits, START:END of 0:{info.num_ws} (empty: each direction's own)"
    return [gr.update(visible=w_plus, value=view_layers if w_plus else "", label=hint),
            gr.update(visible=w_plus)]


def on_layers(page: Page, state: str, base: str, text: str) -> list[Any]:
    """The edit layer range changed: outputs [state, view, view-b, caption, permalink,
    status]."""
    view = dataclasses.replace(page.view_of(state), layers=(text or "").strip())
    return [view.to_query(), *page.pictures(view), page.caption(view), page.link(base, view),
            ""]


def _seeds(text: str, what: str) -> list[int]:
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"{what} must be seeds like 1,2,3, got {text!r}")
    return [int(p) for p in parts]


def on_mix(page: Page, state: str, rows: str, cols: str, layers: str) -> list[Any]:
    """Outputs [mix grid, status]: row seeds × column seeds at the view's ψ and class."""
    view = page.view_of(state)
    span = dataclasses.replace(view, layers=(layers or "").strip()).layer_range()
    if span is None:
        raise ValueError("layers must be START:END, e.g. 0:4")
    info = page.explorer.info(view.model)
    row_seeds, col_seeds = _seeds(rows, "row seeds"), _seeds(cols, "column seeds")
    result = page.explorer.client.style_mix(
        view.model, row_seeds=row_seeds, col_seeds=col_seeds, layers=span,
        truncation_psi=view.psi, class_labels=[view.label] if info.is_conditional else None,
        output="uint8")
    assert result.images is not None
    scale = page.explorer.scale(view.model, page.explorer.thumb_px)
    cells = to_hwc(result.images, scale)
    grid = tile(cells, len(col_seeds))
    return [page.png_file(grid), f"Mixed {len(row_seeds)} × {len(col_seeds)} seeds of "
                                 f"{view.model}: layers {span[0]}:{span[1]} from the columns."]


def tile(cells: list[npt.NDArray[np.uint8]], columns: int,
         padding: int = 2) -> npt.NDArray[np.uint8]:
    """Pictures [H, W] or [H, W, C] as one grid of `columns` columns, `padding` pixels apart."""
    first = cells[0]
    h, w = first.shape[:2]
    rows = -(-len(cells) // columns)
    grid = np.zeros((rows * h + (rows - 1) * padding, columns * w + (columns - 1) * padding,
                     *first.shape[2:]), np.uint8)
    for i, cell in enumerate(cells):
        top, left = (i // columns) * (h + padding), (i % columns) * (w + padding)
        grid[top:top + h, left:left + w] = cell
    return grid
