"""Names in messages: short echoes and close-match suggestions."""

from __future__ import annotations

from latentserve.core.names import LISTED_NAMES, did_you_mean, shown


def test_shown_cuts_long_names() -> None:
    assert shown("abc") == "'abc'"
    assert shown("x" * 1000).endswith("… (1000 characters)") and len(shown("x" * 1000)) < 90


def test_did_you_mean_suggests_close_names_and_lists_the_rest() -> None:
    assert did_you_mean("sprite-vae", ["sprites-vae", "shapes3d"]) == (
        " (did you mean 'sprites-vae'? known: shapes3d, sprites-vae)")
    assert did_you_mean("Shapes3D", ["shapes3d"]).startswith(" (did you mean 'shapes3d'?")
    assert did_you_mean("zzz", ["a", "b"]) == " (known: a, b)"
    assert did_you_mean("zzz", []) == " (known: none)"
    many = [f"m{i:03d}" for i in range(50)]
    assert did_you_mean("q", many).count(",") == LISTED_NAMES - 1
