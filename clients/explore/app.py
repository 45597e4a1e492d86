"""The explorer page (Gradio Blocks): layout, and one handler per user action.

Every handler reads the current `View` (a permalink query string kept in session state),
changes what its control changed, asks the `Explorer` for pictures and returns them with the
new permalink. Service errors become a readable line in the status box, never a traceback.
Sliders request on release; checkboxes and pickers on user input only (so that setting
controls from a permalink does not fire requests). Example::

    with Client("127.0.0.1:50051") as client:
        build_app(Explorer(client)).launch(server_port=7860)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import numpy.typing as npt

from latentserve.client import (
    GenerateResult,
    LatentServeClientError,
    ModelInfo,
    UnavailableError,
)

from .mix_view import build_mix_controls, on_layers, on_mix, w_plus_updates
from .project_view import project_updates
from .render import GRID_SIZE, Explorer, png_bytes, quality_text, slider_label
from .uploads import CACHE_CLEANUP, MAX_UPLOAD_BYTES, read_upload
from .view import METHODS, View, encode_latent

MAX_DIRECTIONS = 24
"""Direction slider slots (a model's first 24 directions get a slider)."""

STRENGTH_RANGE = 3.0
"""Sliders span ± this many units of each direction."""

CSS = """
#view img, #view-b img, #strip img, #seeds img { image-rendering: pixelated; }
#status { min-height: 1.5em; }
#directions { max-height: 720px; overflow-y: auto; overflow-x: hidden; flex-wrap: nowrap;
              min-width: 0 !important; }
#directions .form { flex-wrap: wrap !important; overflow-x: hidden !important; }
#directions .form > * { flex: 1 1 100% !important; min-width: 0 !important; }
#seeds .grid-container, #seeds-b .grid-container {
    grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
#seeds .grid-wrap, #seeds-b .grid-wrap { overflow-x: hidden !important; }
"""


def _message(err: Exception, address: str = "") -> str:
    """A service or input error as one readable line for the status box."""
    text = " ".join(str(err).split())
    if isinstance(err, UnavailableError):
        return (f"⚠️ The service is unreachable: {text} — is `latentserve serve` running at "
                f"{address or 'the --address given'}?")
    if isinstance(err, LatentServeClientError):
        return f"⚠️ The service refused: {text}"
    return f"⚠️ {text}"


class Page:
    """The handlers of one explorer page; `components` names every control by elem_id."""

    def __init__(self, explorer: Explorer, files: Path, default_model: str = "") -> None:
        self.explorer = explorer
        self.files = files
        self.default_model = default_model
        self.c: dict[str, Any] = {}

    # -- state ------------------------------------------------------------------------
    @staticmethod
    def view_of(state: str) -> View:
        return View.from_query(state or "")

    def link(self, base: str, view: View) -> str:
        return f"{base}?{view.to_query()}"

    def directions(self, view: View) -> list[str]:
        if not view.model:
            return []
        return [d.name for d in self.explorer.info(view.model).directions[:MAX_DIRECTIONS]]

    # -- pictures -----------------------------------------------------------------------
    def png_file(self, pixels: npt.NDArray[np.uint8]) -> str:
        """`pixels` as a PNG file named by its content, written once and atomically.

        The page gets file paths, not arrays: Gradio writes arrays into its cache in place, so
        a picture returned twice was rewritten while the browser read it (a short read);
        files are copied into the cache under a temporary name and renamed."""
        data = png_bytes(pixels)
        path = self.files / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
            partial.write_bytes(data)
            os.replace(partial, path)
        return str(path)

    @staticmethod
    def animation_file(path: GenerateResult, target: Path, scale: int) -> Path:
        """The path as an animation at `target`, written beside it and renamed into place (a
        rebuild of the same view never rewrites a file the browser may be reading)."""
        partial = target.with_name(f"{target.stem}.{os.getpid()}.{threading.get_ident()}.part"
                                   f"{target.suffix}")
        path.save_animation(partial, fps=12, scale=scale)
        os.replace(partial, target)
        return target

    def pictures(self, view: View) -> tuple[Any, Any]:
        """(view image, comparison image or hidden)."""
        main = self.png_file(self.explorer.view_image(view.model, view))
        if not view.compare:
            return main, gr.update(value=None, visible=False)
        other = dataclasses.replace(view, strengths={
            k: v for k, v in view.strengths.items() if k in self.directions(
                dataclasses.replace(view, model=view.compare))})
        return main, gr.update(value=self.png_file(self.explorer.view_image(view.compare, other)),
                               visible=True, label=f"{view.compare} (same seed and edits)")

    def grids(self, view: View) -> tuple[Any, Any]:
        main = [(self.png_file(p), text) for p, text in self.explorer.seed_grid(view.model, view)]
        if not view.compare:
            return main, gr.update(value=None, visible=False)
        other = [(self.png_file(p), text)
                 for p, text in self.explorer.seed_grid(view.compare, view)]
        return main, gr.update(value=other, visible=True,
                               label=f"{view.compare}: the same seeds")

    def caption(self, view: View) -> str:
        base = "an encoded image" if view.latent else f"seed {view.seed}"
        held = f"; holding {', '.join(view.held)} fixed" if view.held else ""
        edits = ", ".join(f"{k} {v:+g}" for k, v in view.active()) or "no edits"
        return f"**{view.model}** · {base} · ψ {view.psi:g} · {edits}{held}"

    # -- handlers -------------------------------------------------------------------------
    def controls(self, info: ModelInfo, view: View) -> list[Any]:
        """Updates for the label picker and every direction slot, from the model and view."""
        out: list[Any] = [gr.update(
            visible=info.is_conditional,
            choices=[(name, i) for i, name in enumerate(
                info.class_names or [str(i) for i in range(info.num_classes)])],
            value=view.label if info.is_conditional else None)]
        for i in range(MAX_DIRECTIONS):
            if i < len(info.directions):
                d = info.directions[i]
                out.append(gr.update(visible=True, label=slider_label(d),
                                     info=quality_text(d), value=view.strengths.get(d.name, 0.0)))
                out.append(gr.update(visible=True, value=d.name in view.held,
                                     label=f"hold {d.name} fixed"))
            else:
                out += [gr.update(visible=False, value=0.0), gr.update(visible=False, value=False)]
        return out

    def full(self, view: View, base: str, note: str = "") -> list[Any]:
        """Every output of a whole-page refresh (load, permalink, model change)."""
        info = self.explorer.info(view.model)
        grid, grid_b = self.grids(view)
        image, image_b = self.pictures(view)
        model = gr.update(value=view.model, choices=self.explorer.model_names())
        return [view.to_query(), base, model, view.compare, view.start, view.psi,
                ",".join(map(str, view.keyframes)), view.method, view.steps,
                *self.controls(info, view), grid, grid_b, image, image_b, self.caption(view),
                self.link(base, view), *w_plus_updates(info, view.layers),
                note or f"Loaded {view.model}: {info.description}"]

    def full_outputs(self) -> list[Any]:
        c = self.c
        return [c["state"], c["base"], c["model"], c["compare"], c["start"], c["psi"],
                c["keys"], c["method"], c["steps"], c["label"],
                *[x for i in range(MAX_DIRECTIONS) for x in (c[f"dir-{i}"], c[f"hold-{i}"])],
                c["seeds"], c["seeds-b"], c["view"], c["view-b"], c["caption"],
                c["permalink"], c["layers"], c["mix-section"], c["status"]]  # status last

    def on_load(self, request: gr.Request) -> list[Any]:
        """Page opened: restore the permalink's view, or show the first served model."""
        headers = request.headers
        referer = str(headers.get("referer", ""))  # the page's own URL (events use the queue)
        host = headers.get("x-forwarded-host") or headers.get("host", "127.0.0.1")
        base = (referer.split("?", 1)[0].split("#", 1)[0] if referer
                else f"{headers.get('x-forwarded-proto', 'http')}://{host}/")
        query = {k: v for k, v in request.query_params.items() if k != "__theme"}
        view = View.from_query(query)
        if not view.model:
            view = dataclasses.replace(view, model=self.default_model or self.first_model())
        return self.full(self.pin(view), base)

    def first_model(self) -> str:
        """The model a page opens with: the service's default model (GetModel of the empty
        name), else the first served one."""
        try:
            return self.explorer.pin("")
        except LatentServeClientError:
            names = self.explorer.model_names()
            if not names:
                raise ValueError("the service serves no models yet") from None
            return names[0]

    def pin(self, view: View) -> View:
        """The view with its model (and comparison) pinned to the versions they name now."""
        compare = self.explorer.pin(view.compare) if view.compare else ""
        return dataclasses.replace(view, model=self.explorer.pin(view.model), compare=compare)

    def on_model(self, model: str, compare: str, base: str) -> list[Any]:
        """A model (and optional comparison) picked: a fresh view of it on the same seeds."""
        if not model:
            raise ValueError("type or pick a model: NAME, NAME@ALIAS or NAME:VERSION")
        return self.full(self.pin(View(model=model.strip(), compare=compare.strip())), base)

    def on_grid(self, state: str, base: str, start: float, psi: float, label: Any) -> list[Any]:
        """Seed page, ψ or class changed: new thumbnails and view."""
        view = dataclasses.replace(self.view_of(state), start=max(0, int(start or 0)),
                                   psi=float(psi), label=int(label or 0))
        return [view.to_query(), *self.grids(view), *self.pictures(view), self.caption(view),
                self.link(base, view), ""]

    def on_page(self, state: str, base: str, step: int) -> list[Any]:
        view = self.view_of(state)
        view = dataclasses.replace(view, start=max(0, view.start + step))
        return [view.to_query(), view.start, *self.grids(view), self.link(base, view), ""]

    def on_select(self, state: str, base: str, evt: gr.SelectData) -> list[Any]:
        """A thumbnail clicked: it becomes the edited base (edits kept)."""
        view = self.view_of(state)
        view = dataclasses.replace(view, seed=view.start + int(evt.index), latent="")
        return [view.to_query(), *self.pictures(view), self.caption(view),
                self.link(base, view), ""]

    def on_direction(self, state: str, base: str, *values: Any) -> list[Any]:
        """A slider released or a hold toggled: the view moved along every direction."""
        view = self.view_of(state)
        names = self.directions(view)
        strengths = {n: float(values[2 * i] or 0.0) for i, n in enumerate(names)}
        held = tuple(n for i, n in enumerate(names) if values[2 * i + 1])
        view = dataclasses.replace(view, strengths=strengths, held=held)
        return [view.to_query(), *self.pictures(view), self.caption(view),
                self.link(base, view), ""]

    def on_add_key(self, state: str, base: str, keys: str) -> list[Any]:
        view = self.view_of(state)
        text = ",".join(filter(None, [keys.strip(" ,"), str(view.seed)]))
        return [text, ""]

    def on_build(self, state: str, base: str, keys: str, method: str, steps: float,
                 progress: gr.Progress = gr.Progress()) -> list[Any]:
        """Build the keyframe interpolation: a strip, a GIF and an MP4 to download."""
        parts = [p.strip() for p in keys.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise ValueError(f"keyframes must be seeds separated by commas, got {keys!r}")
        view = dataclasses.replace(self.view_of(state), keyframes=tuple(map(int, parts)),
                                   method=method, steps=int(steps))

        def report(done: int, total: int) -> None:
            progress((done, total), desc="frames", unit="frames")

        path = self.explorer.interpolation(view.model, view, report)
        scale = self.explorer.scale(view.model, 128)
        stem = hashlib.sha256(f"{view.model}?{view.to_query()}".encode()).hexdigest()[:16]
        gif = self.animation_file(path, self.files / f"interpolation-{stem}.gif", scale)
        try:
            mp4: Any = self.animation_file(path, self.files / f"interpolation-{stem}.mp4", scale)
        except ImportError:
            mp4 = None
        strip = np.asarray(path.grid(padding=1))
        strip = np.repeat(np.repeat(strip, scale, axis=0), scale, axis=1)
        return [view.to_query(), self.png_file(strip), str(gif),
                None if mp4 is None else str(mp4),
                self.link(base, view),
                f"{len(path)} frames: (keyframes − 1) × (steps − 1) + 1 with "
                f"{len(view.keyframes)} keyframes and steps={view.steps}"]

    def on_encode(self, state: str, base: str, image: Any) -> list[Any]:
        """An uploaded picture encoded: its latent becomes the edited base."""
        if image is None:
            raise ValueError("upload an image first")
        view = self.view_of(state)
        z = self.explorer.encode(view.model, read_upload(image), view.label)
        view = dataclasses.replace(view, latent=encode_latent(z))
        return [view.to_query(), *self.pictures(view), self.caption(view),
                self.link(base, view), f"Encoded the upload with {view.model}; edit it with "
                "the sliders."]


def guarded(n_outputs: int, handler: Callable[..., list[Any]],
            address: str = "") -> Callable[..., Any]:
    """`handler` with errors shown in the status box (its last output), other outputs kept."""

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> list[Any]:
        try:
            return handler(*args, **kwargs)
        except (LatentServeClientError, ValueError, ImportError, KeyError) as err:
            return [gr.skip() for _ in range(n_outputs - 1)] + [_message(err, address)]

    return run


def build_app(explorer: Explorer, *, default_model: str = "",
              files: Path | None = None) -> gr.Blocks:
    """The explorer page over `explorer` (its SDK client must stay open while it serves);
    `default_model` is shown when the URL names none (else the first served model)."""
    page = Page(explorer, files or Path(tempfile.mkdtemp(prefix="latentserve-explore-")),
                default_model)
    c = page.c
    demo = gr.Blocks(title="latentserve explorer", analytics_enabled=False,
                     delete_cache=CACHE_CLEANUP)
    with demo:
        c["state"], c["base"] = gr.State(""), gr.State("")
        gr.Markdown("## latentserve explorer\nPick a model, click a seed, drag a direction.")
        with gr.Row():
            c["model"] = gr.Dropdown(label="model (NAME@ALIAS or NAME:VERSION)", choices=[],
                                     allow_custom_value=True, elem_id="model", scale=3)
            c["compare"] = gr.Textbox(label="compare with (side by side, optional)",
                                      elem_id="compare", scale=3)
            c["load"] = gr.Button("Load", elem_id="load", variant="primary", scale=1)
        c["status"] = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column(scale=4):
                with gr.Row():
                    c["prev"] = gr.Button("◀ seeds", elem_id="prev", size="sm")
                    c["start"] = gr.Number(label="first seed", precision=0, minimum=0,
                                           elem_id="start")
                    c["next"] = gr.Button("seeds ▶", elem_id="next", size="sm")
                c["psi"] = gr.Slider(0.1, 1.5, value=1.0, step=0.05, label="ψ (truncation)",
                                     elem_id="psi")
                c["label"] = gr.Dropdown(label="class", choices=[], elem_id="label",
                                         visible=False)
                c["seeds"] = gr.Gallery(label="seeds (click one)", columns=3,
                                        allow_preview=False, elem_id="seeds", height="auto")
                c["seeds-b"] = gr.Gallery(columns=3, allow_preview=False, elem_id="seeds-b",
                                          visible=False, height="auto")
            with gr.Column(scale=4):
                c["caption"] = gr.Markdown(elem_id="caption")
                with gr.Row():
                    c["view"] = gr.Image(label="view", elem_id="view", format="png",
                                         interactive=False, type="numpy")
                    c["view-b"] = gr.Image(elem_id="view-b", format="png", interactive=False,
                                           type="numpy", visible=False)
            with gr.Column(scale=4, elem_id="directions"):
                c["layers"] = gr.Textbox(label="W+ layers of edits", elem_id="layers",
                                         visible=False, placeholder="e.g. 0:4")
                for i in range(MAX_DIRECTIONS):
                    c[f"dir-{i}"] = gr.Slider(-STRENGTH_RANGE, STRENGTH_RANGE, value=0.0,
                                              step=0.05, elem_id=f"dir-{i}", visible=False)
                    c[f"hold-{i}"] = gr.Checkbox(label="hold fixed", show_label=True,
                                                 elem_id=f"hold-{i}", visible=False)
        with gr.Accordion("Interpolation", open=True), gr.Row():
            with gr.Column(scale=1):
                c["keys"] = gr.Textbox(label="keyframes (seeds)", elem_id="keys")
                c["add-key"] = gr.Button("add the selected seed", elem_id="add-key", size="sm")
                c["method"] = gr.Radio(list(METHODS), value="slerp", label="method",
                                       elem_id="method")
                c["steps"] = gr.Slider(2, 64, value=8, step=1, label="steps per segment",
                                       elem_id="steps")
                c["build"] = gr.Button("Build", elem_id="build", variant="primary")
            with gr.Column(scale=3):
                c["strip"] = gr.Image(label="strip", elem_id="strip", format="png",
                                      interactive=False, type="numpy", height=160)
                with gr.Row():
                    c["gif"] = gr.File(label="GIF", elem_id="gif", interactive=False)
                    c["mp4"] = gr.File(label="MP4", elem_id="mp4", interactive=False)
        build_mix_controls(c)
        with gr.Accordion("Encode an image", open=True), gr.Row():
            c["upload"] = gr.Image(label="upload a picture", sources=["upload"],
                                   type="filepath", image_mode=None,  # read by read_upload
                                   elem_id="upload", height=200)
            c["encode"] = gr.Button("Encode", elem_id="encode")
            c["project"] = gr.Button("Project (any model, live)", elem_id="project")
        c["permalink"] = gr.Textbox(label="permalink (restores this exact view)",
                                    elem_id="permalink", interactive=False)
        _wire(page, demo)
    return demo


def _wire(page: Page, demo: gr.Blocks) -> None:
    c = page.c
    full = page.full_outputs()
    pictures = [c["state"], c["view"], c["view-b"], c["caption"], c["permalink"], c["status"]]
    demo.load(guarded(len(full), page.on_load, page.explorer.client.address), None, full)
    c["load"].click(guarded(len(full), page.on_model), [c["model"], c["compare"], c["base"]],
                    full)
    grid_out = [c["state"], c["seeds"], c["seeds-b"], c["view"], c["view-b"], c["caption"],
                c["permalink"], c["status"]]
    grid_in = [c["state"], c["base"], c["start"], c["psi"], c["label"]]
    on_grid = guarded(len(grid_out), page.on_grid)
    c["psi"].release(on_grid, grid_in, grid_out)
    c["label"].input(on_grid, grid_in, grid_out)
    c["start"].submit(on_grid, grid_in, grid_out)
    page_out = [c["state"], c["start"], c["seeds"], c["seeds-b"], c["permalink"], c["status"]]
    for name, step in (("prev", -GRID_SIZE), ("next", GRID_SIZE)):
        c[name].click(guarded(len(page_out), functools.partial(_paged, page, step)),
                      [c["state"], c["base"]], page_out)
    c["seeds"].select(guarded(len(pictures), page.on_select), [c["state"], c["base"]],
                      pictures)
    slots = [x for i in range(MAX_DIRECTIONS) for x in (c[f"dir-{i}"], c[f"hold-{i}"])]
    on_direction = guarded(len(pictures), page.on_direction)
    for i in range(MAX_DIRECTIONS):
        c[f"dir-{i}"].release(on_direction, [c["state"], c["base"], *slots], pictures)
        c[f"hold-{i}"].input(on_direction, [c["state"], c["base"], *slots], pictures)
    c["add-key"].click(guarded(2, page.on_add_key), [c["state"], c["base"], c["keys"]],
                       [c["keys"], c["status"]])
    build_out = [c["state"], c["strip"], c["gif"], c["mp4"], c["permalink"], c["status"]]
    c["build"].click(guarded(len(build_out), page.on_build),
                     [c["state"], c["base"], c["keys"], c["method"], c["steps"]], build_out)
    c["encode"].click(guarded(len(pictures), page.on_encode),
                      [c["state"], c["base"], c["upload"]], pictures)
    c["project"].click(functools.partial(project_updates, page),
                       [c["state"], c["base"], c["upload"]], pictures)
    c["layers"].submit(guarded(len(pictures), functools.partial(on_layers, page)),
                       [c["state"], c["base"], c["layers"]], pictures)
    c["mix"].click(guarded(2, functools.partial(on_mix, page)),
                   [c["state"], c["mix-rows"], c["mix-cols"], c["mix-layers"]],
                   [c["mix-grid"], c["status"]])


def _paged(page: Page, step: int, state: str, base: str) -> list[Any]:
    return page.on_page(state, base, step)


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None,
           block: bool = True) -> None:
    """Serve the page (queue of 4 concurrent requests); with `block=False` return once it
    listens (`demo.local_url` is its address)."""
    demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, inbrowser=False, show_error=False, quiet=True,
        prevent_thread_lock=not block, css=CSS, footer_links=[], ssr_mode=False,
        max_file_size=MAX_UPLOAD_BYTES)
