"""clip: shortened text never ends mid-word when a space allows, and says it was cut."""

from __future__ import annotations

from armguard.text import clip

LOCKED = (
    "The scope '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod' cannot "
    "perform write operation because following scope(s) are locked: "
    "'/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/"
    "Microsoft.Authorization/locks/freeze'."
)


def test_short_text_is_whole() -> None:
    assert clip(LOCKED, len(LOCKED)) == LOCKED


def test_a_cut_ends_at_a_space_with_an_ellipsis_and_within_the_limit() -> None:
    out = clip(LOCKED, 200)
    assert len(out) <= 200
    assert out.endswith("…")
    assert LOCKED.startswith(out[:-1])
    assert LOCKED[len(out) - 1] == " "  # the cut fell between words, not inside an ID


def test_text_without_a_space_in_its_second_half_is_cut_at_the_limit() -> None:
    out = clip("x" * 50, 10)
    assert out == "x" * 9 + "…"
