"""Structured logging for the service (structlog): console lines or one JSON object per line.

Request-scoped fields (request id, rpc, model@version) are bound with contextvars, so every log
line of a request carries them. Example::

    configure_logging("INFO", "json")
    log = get_logger(__name__)
    log.info("model loaded", model="sprites-vae", version=3)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

MAX_FIELD_CHARS = 1024
"""Longest value a log field keeps (names come from requests: a 4 MB model name must not
write 4 MB per request); longer values are cut and marked."""
MAX_EXCEPTION_CHARS = 16384
"""Longest traceback a log line keeps."""


def clip_fields(_logger: Any, _method: str,
                event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: cut every string field to MAX_FIELD_CHARS (tracebacks to
    MAX_EXCEPTION_CHARS), marking the cut with its original length."""
    for key, value in event.items():
        limit = MAX_EXCEPTION_CHARS if key == "exception" else MAX_FIELD_CHARS
        if isinstance(value, str) and len(value) > limit:
            event[key] = f"{value[:limit]}…(cut, {len(value)} chars)"
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and stdlib logging to stderr at `level` in `fmt` (console|json)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            clip_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("alembic", "mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> Any:
    """A structlog logger named after the module."""
    return structlog.get_logger(name)
