"""Caller-given names in error messages: echoed short, and with the close matches among the
names that exist (a mistyped model, alias or direction gets a suggestion, not just a refusal).

Example::

    f"unknown model {shown(name)}{did_you_mean(name, ['sprites-vae', 'shapes3d'])}"
    # "unknown model 'sprite-vae' (did you mean 'sprites-vae'? known: shapes3d, sprites-vae)"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

SHOWN_NAME_CHARS = 64
"""Longest caller-given name an error message echoes in full."""
LISTED_NAMES = 12
"""Most known names a message lists."""


def shown(name: str) -> str:
    """A caller-given name as messages echo it: quoted, at most SHOWN_NAME_CHARS long."""
    if len(name) <= SHOWN_NAME_CHARS:
        return repr(name)
    return repr(name[:SHOWN_NAME_CHARS]) + f"… ({len(name)} characters)"


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'? known: a, b)' for the close matches of `given` among `known`;
    ' (known: none)' when nothing exists. Long names are never compared (bounded work)."""
    names = sorted(set(known))
    if not names:
        return " (known: none)"
    listed = ", ".join(names[:LISTED_NAMES]) + (" …" if len(names) > LISTED_NAMES else "")
    close = []
    if len(given) <= SHOWN_NAME_CHARS:
        close = difflib.get_close_matches(given, names, n=3, cutoff=0.6)
        close += [n for n in names if n.lower() == given.lower() and n not in close]
    if not close:
        return f" (known: {listed})"
    return f" (did you mean {' or '.join(map(repr, close))}? known: {listed})"
