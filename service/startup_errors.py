"""Why the server cannot start, as one line: bad settings and start-up failures.

`latentserve serve` (and each worker process) ends a start-up that cannot succeed with one
`error: …` line naming the setting, never a traceback. Example::

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: {settings_error_line(exc)}")
"""

from __future__ import annotations

from pydantic import ValidationError

MAX_SHOWN_INPUT = 80
"""Longest setting value an error line repeats."""


class StartupError(RuntimeError):
    """The server cannot start as configured (port taken, unreadable TLS file, …)."""


def settings_error_line(exc: ValidationError, prefix: str = "LATENTSERVE_") -> str:
    """Every problem of a Settings ValidationError on one line, each naming its variable."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error.get("loc", ()))
        name = f"{prefix}{where.upper()}" if where else "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        given = error.get("input")
        shown = ""
        if where and isinstance(given, str | int | float | bool):
            text = str(given)
            if len(text) > MAX_SHOWN_INPUT:
                text = text[:MAX_SHOWN_INPUT] + "…"
            shown = f" (got {text!r})"
        parts.append(f"{name}: {message}{shown}")
    return "invalid settings: " + "; ".join(parts)
