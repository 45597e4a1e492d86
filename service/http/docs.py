"""`GET /openapi.json` and `GET /docs`: the API description and a page that renders it.

The page is self-contained (no CDN: the service may run where nothing outside is reachable):
it lists every operation with its description, request schema, an example `curl`, and a form
that sends a JSON body to the running server and shows the answer.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from latentserve.service.http import wire
from latentserve.service.http.errors import HttpError
from latentserve.service.http.openapi import document


def add_docs(app: Any) -> None:
    """Serve the document and the page on `app` (an HttpApi)."""
    app.add("/openapi.json", "openapi", _openapi)
    app.add("/docs", "docs", _docs)


async def _openapi(request: wire.Request, send: wire.Send) -> None:
    if request.method != "GET":
        raise HttpError.invalid("/openapi.json takes GET", "method", 405)
    body = json.dumps(document(), separators=(",", ":")).encode()
    await wire.send_bytes(send, request, 200, body, "application/json")


async def _docs(request: wire.Request, send: wire.Send) -> None:
    if request.method != "GET":
        raise HttpError.invalid("/docs takes GET", "method", 405)
    await wire.send_bytes(send, request, 200, page(), "text/html; charset=utf-8",
                          [(b"content-security-policy",
                            b"default-src 'self'; script-src 'unsafe-inline'; "
                            b"style-src 'unsafe-inline'; img-src 'self' data: blob:")])


@cache
def page() -> bytes:
    """The docs page (docs.html beside this module)."""
    return resources.files("latentserve.service.http").joinpath("docs.html").read_bytes()
