"""latentserve.explore: a browser latent explorer, `latentserve explore` (extra `[ui]`).

A web page to look at a served generator: a seed browser with ψ, one slider per direction in
its own unit with its measured quality and a "hold fixed" toggle (`conditional_on`), a class
picker for conditional models, keyframe interpolation (LERP/SLERP/VP-LERP) with a strip and a
GIF/MP4 to download, Encode of an uploaded image, side by side comparison of two versions on
the same seeds, and a permalink that restores the exact view (seeds are reproducible).

It is only a client of the service: every picture comes from the SDK (`latentserve.client`),
so it runs against any `latentserve serve` (embedded or Triton) and never imports the server.

Why Gradio: it is what the latent-model community already uses for such demos (Hugging Face
Spaces, BentoML's documented UI), it is actively maintained, it gives sliders with a
*release* event (request on release, not per tick), galleries with click selection, file
downloads, uploads and per-session state without hand-written JavaScript, and its pages are
plain HTML that Selenium drives in tests. Streamlit re-runs the whole script per interaction
(no release events, slow repeated views); a hand-written page would be more code to keep.

Example::

    latentserve explore --address 127.0.0.1:50051 --port 7860
    # or, from Python:
    from latentserve.client import Client
    from latentserve.explore import Explorer, build_app
    with Client("127.0.0.1:50051") as client:
        build_app(Explorer(client)).launch(server_port=7860)
"""

from .render import Explorer, quality_text
from .view import View, encode_latent

__all__ = ["Explorer", "View", "build_app", "encode_latent", "quality_text"]


def __getattr__(name: str) -> object:
    if name == "build_app":  # imports gradio: only when the page is wanted
        from .app import build_app

        return build_app
    raise AttributeError(name)
