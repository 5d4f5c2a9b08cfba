"""The three-way rebase on its own: what is the intent's own change, what is someone else's,
and where they collide."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from armguard.coordinator.intents import MergeIntent, PutIntent, TagsIntent
from armguard.coordinator.write.rebase import delta_intent, diff_bodies, three_way

BASE: dict[str, Any] = {
    "id": "/x",
    "etag": 'W/"1"',
    "location": "eastus",
    "tags": {"env": "prod", "owner": "team1"},
    "properties": {"provisioningState": "Succeeded", "rules": [1, 2], "computed": "x"},
}


def test_a_change_nobody_else_made_is_replayed_on_the_live_body() -> None:
    live = {**BASE, "etag": 'W/"2"', "tags": {**BASE["tags"], "hotfix": "INC-1"}}
    rebase = three_way(BASE, TagsIntent({"release": "r7"}), live)
    assert rebase.conflicts == []
    assert delta_intent(rebase, None) == TagsIntent({"release": "r7"})


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    live = {**BASE, "tags": {**BASE["tags"], "owner": "team3"}}
    assert three_way(BASE, TagsIntent({"owner": "team3"}), live).conflicts == []


def test_a_field_both_changed_differently_is_a_conflict_with_three_values() -> None:
    live = {**BASE, "tags": {**BASE["tags"], "owner": "team2"}}
    (conflict,) = three_way(BASE, TagsIntent({"owner": "team3"}), live).conflicts
    assert conflict.to_json() == {
        "path": "tags.owner",
        "baseline": "team1",
        "yours": "team3",
        "theirs": "team2",
        "absent": [],
    }


def test_a_removal_against_a_change_is_a_conflict() -> None:
    live = {**BASE, "tags": {"env": "staging", "owner": "team1"}}
    (conflict,) = three_way(BASE, TagsIntent({}, ("env",)), live).conflicts
    assert conflict.to_json()["absent"] == ["yours"]


def test_a_change_inside_an_object_the_other_side_replaced_is_a_conflict() -> None:
    live = {**BASE, "properties": {**BASE["properties"], "rules": [3]}}
    patch = MergeIntent({"properties": {"rules": [1, 2, 4]}})
    assert [c.path for c in three_way(BASE, patch, live).conflicts] == [("properties", "rules")]


def test_a_put_leaving_out_computed_properties_does_not_remove_them() -> None:
    put = PutIntent({"location": "eastus", "tags": {"env": "prod"}})  # drops owner and computed
    rebase = three_way(BASE, put, {**BASE, "properties": {**BASE["properties"], "computed": "y"}})
    assert rebase.conflicts == []
    assert delta_intent(rebase, None) == TagsIntent({}, ("owner",))


def test_nothing_changed_relative_to_the_baseline_is_no_intent() -> None:
    assert delta_intent(three_way(BASE, TagsIntent({"env": "prod"}), BASE), None) is None


def test_two_writers_adding_keys_to_a_missing_object_do_not_collide() -> None:
    base = {"location": "eastus"}
    live = {"location": "eastus", "tags": {"b": "2"}}
    rebase = three_way(base, TagsIntent({"a": "1"}), live)
    assert rebase.conflicts == []
    assert diff_bodies({}, {"tags": {}}) == {("tags",): {}}


TAGS = st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["1", "2", "3"]), max_size=4)


@given(base=TAGS, mine=TAGS, theirs=TAGS)
def test_disjoint_changes_merge_to_both(
    base: dict[str, str], mine: dict[str, str], theirs: dict[str, str]
) -> None:
    mine_keys = set(mine)
    theirs = {k: v for k, v in theirs.items() if k not in mine_keys}
    baseline = {"location": "eastus", "tags": base}
    live = {"location": "eastus", "tags": {**base, **theirs}}
    rebase = three_way(baseline, TagsIntent(mine) if mine else TagsIntent({"z": "9"}), live)
    assert rebase.conflicts == []
    delta = delta_intent(rebase, None)
    result = delta.apply(live) if delta is not None else live
    want = {**base, **theirs, **(mine or {"z": "9"})}
    assert result["tags"] == want
