"""Content negotiation for generated images: JSON, one PNG grid, or NumPy arrays.

`Accept: application/json` (the default) answers the proto3 JSON mapping (tensors with base64
data, PNGs as base64 strings); `Accept: image/png` answers one PNG of every image in a grid
(`?cols=` columns; by default one column per strength for Edit, else a near-square grid);
`Accept: application/x-npy` answers the images as a `.npy` array (float32 [n, C, H, W], or uint8
when the request asked for UINT8), or the latents when there are no images (Encode,
LATENTS_ONLY). Model and version ride in `X-Latentserve-Model` / `X-Latentserve-Version`.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from google.protobuf.message import Message
from PIL import Image

from latentserve.core.tensors import from_tensor
from latentserve.service.http.errors import HttpError
from latentserve.v1 import generator_pb2 as pb

JSON = "application/json"
PNG = "image/png"
NPY = "application/x-npy"
PROTO = "application/proto"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


def accepted(accept: str, offers: list[str]) -> str | None:
    """The first of `offers` the Accept header allows, best quality first (None: none)."""
    if not accept.strip():
        return offers[0]
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, pieces[0].lower()))
    for negative_quality, _, kind in sorted(ranked):
        if negative_quality >= 0:
            continue
        for offer in offers:
            major = offer.split("/")[0]
            if kind in (offer, "*/*", f"{major}/*"):
                return offer
    return None


def offers_for(reply_type: type[Message]) -> list[str]:
    """What a method's reply can be encoded as."""
    if reply_type is pb.GenerateResponse:
        return [JSON, PNG, NPY]
    if reply_type is pb.EncodeResponse:
        return [JSON, NPY]
    return [JSON]


def prepare(request: Message, media: str) -> None:
    """Ask the servicer for the encoding `media` needs (the `output` field, when there is one)."""
    if "output" not in request.DESCRIPTOR.fields_by_name:
        return
    target: Any = request
    if media == PNG:
        target.output = pb.OUTPUT_FORMAT_UINT8
    elif media == NPY and target.output == pb.OUTPUT_FORMAT_PNG:
        target.output = pb.OUTPUT_FORMAT_FLOAT32


def headers(reply: Message) -> list[tuple[bytes, bytes]]:
    """Which model version answered, as response headers."""
    model = getattr(reply, "model", None)
    if model is None or not model.name:
        return []
    return [(b"x-latentserve-model", model.name.encode()),
            (b"x-latentserve-version", str(model.version).encode())]


def grid_columns(request: Message, rows: int, query: dict[str, str]) -> int:
    """Columns of the PNG grid: `?cols=`, else one per strength (Edit), else ~sqrt(rows)."""
    if "cols" in query:
        text = query["cols"]
        if not text.isdigit() or not 1 <= int(text) <= 4096:
            raise HttpError.invalid("cols must be an integer between 1 and 4096", "cols")
        return int(text)
    strengths = getattr(request, "strengths", None)
    if strengths:
        return len(strengths)
    return max(1, math.ceil(math.sqrt(rows)))


def png_grid(reply: pb.GenerateResponse, cols: int) -> bytes:
    """Every image of a reply (uint8 [n, C, H, W]) in one PNG, row-major."""
    if not reply.HasField("images") or not reply.images.shape:
        raise HttpError.invalid("this request produces no images to draw (LATENTS_ONLY?)",
                                "output")
    images = from_tensor(reply.images, field="images")
    n, channels, height, width = images.shape
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    sheet = np.zeros((rows * height, cols * width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = image.transpose(1, 2, 0)
    pixels = sheet[:, :, 0] if channels == 1 else sheet
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def npy(reply: Message) -> bytes:
    """The reply's images (else its latents) as a .npy file."""
    tensor = None
    if isinstance(reply, pb.GenerateResponse) and reply.HasField("images"):
        tensor = reply.images
    elif reply.HasField("latents"):
        tensor = getattr(reply, "latents")  # noqa: B009
    if tensor is None:
        raise HttpError.invalid("this reply carries no array", "output")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(from_tensor(tensor, field="images")),
            allow_pickle=False)
    return buffer.getvalue()
