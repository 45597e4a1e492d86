"""What the explorer shows, as one value, and its permalink (a URL query string).

A `View` names everything a picture depends on: the pinned model version, the seed (or an
encoded latent), ψ, the class, each direction's strength, the held directions, the
interpolation keyframes. Seeds are reproducible, so a permalink restores the exact pixels.
Example::

    view = View(model="sprites-vae:3", seed=7, psi=0.7, strengths={"scale": 1.5},
                held=("pos_x",))
    View.from_query(view.to_query()) == view      # True
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import numpy as np

METHODS = ("slerp", "lerp", "vp_lerp")
"""Interpolation methods the page offers (the SDK's names)."""


@dataclass(frozen=True)
class View:
    """The state of the page that determines its pictures (all of it goes in the permalink).

    `latent` (base64 float32) replaces `seed` as the edited base after an Encode.
    """

    model: str = ""
    compare: str = ""
    start: int = 0
    seed: int = 0
    psi: float = 1.0
    label: int = 0
    strengths: Mapping[str, float] = field(default_factory=dict)
    held: tuple[str, ...] = ()
    keyframes: tuple[int, ...] = ()
    steps: int = 8
    method: str = "slerp"
    latent: str = ""
    layers: str = ""
    """W+ models: the layer range START:END every edit applies to ("" = each direction's own)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.psi) and self.psi > 0):
            raise ValueError(f"ψ must be a finite number > 0, got {self.psi}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be ≥ 2, got {self.steps}")
        for name, value in self.strengths.items():
            if not math.isfinite(value):
                raise ValueError(f"strength of {name!r} must be finite, got {value}")
        self.layer_range()  # checks the text

    def layer_range(self) -> tuple[int, int] | None:
        """`layers` as (start, end), or None for each direction's own range."""
        if not self.layers:
            return None
        start, sep, end = self.layers.partition(":")
        if not (sep and start.strip().isdigit() and end.strip().isdigit()
                and int(start) < int(end)):
            raise ValueError(f"layers must be START:END with START < END, e.g. 0:4, got "
                             f"{self.layers!r}")
        return int(start), int(end)

    def active(self) -> list[tuple[str, float]]:
        """The directions with a non-zero strength, in name order."""
        return sorted((k, v) for k, v in self.strengths.items() if v != 0.0)

    def base_latent(self) -> np.ndarray | None:
        """The encoded latent [1, N] this view edits, or None when it edits `seed`."""
        if not self.latent:
            return None
        try:
            raw = base64.urlsafe_b64decode(self.latent.encode())
        except (binascii.Error, ValueError):
            raise ValueError("latent: not valid base64") from None
        if len(raw) == 0 or len(raw) % 4:
            raise ValueError("latent: not a float32 vector")
        return np.frombuffer(raw, dtype="<f4").reshape(1, -1).astype(np.float32)

    def to_query(self) -> str:
        """The permalink's query string (no leading '?')."""
        pairs: list[tuple[str, str]] = [("model", self.model)]
        if self.compare:
            pairs.append(("compare", self.compare))
        pairs += [("start", str(self.start)), ("seed", str(self.seed)),
                  ("psi", repr(float(self.psi))), ("label", str(self.label))]
        pairs += [(f"s.{k}", repr(float(v))) for k, v in self.active()]
        if self.held:
            pairs.append(("hold", ",".join(self.held)))
        if self.keyframes:
            pairs.append(("keys", ",".join(map(str, self.keyframes))))
        pairs += [("steps", str(self.steps)), ("method", self.method)]
        if self.latent:
            pairs.append(("z", self.latent))
        if self.layers:
            pairs.append(("layers", self.layers))
        return urlencode(pairs)

    @classmethod
    def from_query(cls, query: str | Mapping[str, str]) -> View:
        """The view a permalink names (ValueError naming the bad parameter)."""
        if isinstance(query, str):
            params = {k: v[-1] for k, v in parse_qs(query.lstrip("?")).items()}
        else:
            params = dict(query)

        def number(key: str, kind: type[int] | type[float], default: float) -> float:
            text = params.get(key)
            if text is None or text == "":
                return default
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"permalink: {key}={text!r} is not a number") from None

        def names(key: str) -> tuple[str, ...]:
            return tuple(p for p in params.get(key, "").split(",") if p)

        strengths = {k[2:]: float(number(k, float, 0.0)) for k in params if k.startswith("s.")}
        keys = names("keys")
        if not all(k.isdigit() for k in keys):
            raise ValueError(f"permalink: keys={params['keys']!r} must be seeds, e.g. 1,2,3")
        return cls(
            model=params.get("model", ""),
            compare=params.get("compare", ""),
            start=int(number("start", int, 0)),
            seed=int(number("seed", int, 0)),
            psi=float(number("psi", float, 1.0)),
            label=int(number("label", int, 0)),
            strengths=strengths,
            held=names("hold"),
            keyframes=tuple(int(k) for k in keys),
            steps=int(number("steps", int, 8)),
            method=params.get("method", "slerp") or "slerp",
            latent=params.get("z", ""),
            layers=params.get("layers", ""),
        )


def encode_latent(z: np.ndarray) -> str:
    """A latent [N] or [1, N] as the permalink's URL-safe base64 float32 text."""
    return base64.urlsafe_b64encode(np.asarray(z, dtype="<f4").reshape(-1).tobytes()).decode()
