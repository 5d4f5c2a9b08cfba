"""Intents: satisfaction, folding in submission order, JSON round trips, the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from armguard.coordinator.intents import (
    ActionIntent,
    BodyIntent,
    DeleteIntent,
    Intent,
    IntentError,
    MergeIntent,
    PutIntent,
    Request,
    ResizeIntent,
    TagsIntent,
    fold,
    intent_from_json,
    intent_kinds,
    merge_patch,
    register_intent,
)

VM_RUNNING = {
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "instanceView": {"statuses": [{"code": "PowerState/running"}]},
    }
}


def test_merge_patch_follows_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


def test_merge_satisfied_only_when_every_leaf_matches() -> None:
    intent = MergeIntent({"tags": {"env": "prod", "old": None}})
    assert intent.satisfied_by({"tags": {"env": "prod"}})
    assert not intent.satisfied_by({"tags": {"env": "prod", "old": "1"}})
    assert not intent.satisfied_by({"tags": {"env": "dev"}})
    assert not intent.satisfied_by(None)
    assert intent.fields() == {"tags.env", "tags.old"}


def test_rebase_recomputes_on_live_and_drops_read_only_fields() -> None:
    intent = MergeIntent({"properties": {"addressPrefix": "10.0.1.0/24"}})
    live = {
        "id": "/x",
        "etag": 'W/"1"',
        "properties": {"provisioningState": "Succeeded", "addressPrefix": "10.0.0.0/24", "k": 1},
    }
    body = intent.rebase(live)
    assert body == {"properties": {"addressPrefix": "10.0.1.0/24", "k": 1}}


def test_tags_set_and_remove_compose_in_submission_order() -> None:
    live = {"tags": {"a": "1", "b": "2"}}
    first = TagsIntent(set={"c": "3"}, remove=("a",))
    second = TagsIntent(set={"a": "9"})
    third = TagsIntent(remove=("c",))
    assert fold([first, second, third], live)["tags"] == {"b": "2", "a": "9"}
    assert fold([second, first], live)["tags"] == {"b": "2", "c": "3"}


def test_tags_rejects_a_key_set_and_removed() -> None:
    with pytest.raises(IntentError, match="both set and removed"):
        TagsIntent(set={"a": "1"}, remove=("A",))
    with pytest.raises(IntentError):
        TagsIntent()


def test_put_allows_computed_properties_but_replaces_tags_and_on_fold() -> None:
    put = PutIntent({"location": "eastus", "properties": {"addressPrefix": "10.0.0.0/24"}})
    live = {"location": "eastus", "properties": {"addressPrefix": "10.0.0.0/24", "x": 1}}
    assert put.satisfied_by(live)  # "x" is what the provider computes, not the caller's
    # Tags are wholly the caller's: a PUT without them removes them, so it is not yet done.
    assert not put.satisfied_by({**live, "tags": {"t": "1"}})
    tagged = PutIntent({**put.body, "tags": {"a": "1"}})
    assert tagged.satisfied_by({**live, "tags": {"a": "1"}})
    assert not tagged.satisfied_by({**live, "tags": {"a": "1", "extra": "2"}})
    folded = fold([MergeIntent({"tags": {"t": "1"}}), put], live)
    assert folded == {"location": "eastus", "properties": {"addressPrefix": "10.0.0.0/24"}}


def test_only_body_intents_may_fold() -> None:
    with pytest.raises(TypeError, match="not a BodyIntent"):

        @register_intent
        @dataclass(frozen=True)
        class FoldablePost(Intent):
            kind: ClassVar[str] = "test-foldable-post"
            barrier: ClassVar[bool] = False
            api_version: str | None = None

            def satisfied_by(self, live: Any) -> bool:
                return False

            def rebase(self, live: Any) -> Request:
                return Request("POST", "/restart")

            def fields(self) -> set[str]:
                return set()

            def _payload(self) -> dict[str, Any]:
                return {}

            @classmethod
            def from_json(cls, data: Any) -> FoldablePost:
                return cls()

    assert "test-foldable-post" not in intent_kinds()


def test_power_actions_are_satisfied_by_their_power_state() -> None:
    assert ActionIntent("start").satisfied_by(VM_RUNNING)
    assert not ActionIntent("deallocate").satisfied_by(VM_RUNNING)
    assert not ActionIntent("restart").satisfied_by(VM_RUNNING)
    assert ActionIntent("powerOff").rebase(VM_RUNNING) == Request("POST", "/powerOff", None)
    assert ActionIntent.barrier
    assert DeleteIntent.barrier
    assert not MergeIntent.barrier
    with pytest.raises(IntentError):
        ActionIntent("a/b")


def test_delete_is_satisfied_by_absence() -> None:
    assert DeleteIntent().satisfied_by(None)
    assert not DeleteIntent().satisfied_by({})
    assert DeleteIntent().rebase({}) == Request("DELETE")


def test_resize_declares_deallocation_as_its_prerequisite() -> None:
    intent = ResizeIntent("Standard_D4s_v5")
    assert not intent.satisfied_by(VM_RUNNING)
    body = intent.rebase(VM_RUNNING)
    assert body["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    assert "instanceView" not in body["properties"]
    assert intent.prerequisite("deallocate") == ("deallocate",)
    assert intent.prerequisite("detach") is None
    assert MergeIntent({"a": 1}).prerequisite("deallocate") is None


@pytest.mark.parametrize(
    "intent",
    [
        MergeIntent({"tags": {"a": "1"}}, api_version="2024-01-01"),
        PutIntent({"location": "eastus"}),
        TagsIntent(set={"a": "1"}, remove=("b",)),
        ActionIntent("deallocate"),
        ActionIntent("runCommand", body={"commandId": "RunShellScript"}),
        DeleteIntent(),
        ResizeIntent("Standard_D2s_v5"),
    ],
)
def test_json_round_trip(intent: Any) -> None:
    data = intent.to_json()
    assert intent_from_json(data) == intent
    import json

    assert intent_from_json(json.dumps(data)) == intent


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ({"kind": "nope"}, "unknown intent kind"),
        ({"kind": "merge", "patch": []}, "'patch' must be a JSON object"),
        ({"kind": "merge", "patch": {}}, "non-empty"),
        ({"kind": "tags", "set": {"a": 1}}, "string value"),
        ({"kind": "resize"}, "needs a 'size'"),
        ({"kind": "merge", "patch": {"a": 1}, "api_version": ""}, "api_version"),
    ],
)
def test_bad_intent_documents_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(IntentError, match=message):
        intent_from_json(doc)


def test_library_users_can_register_their_own_kind() -> None:
    @register_intent
    @dataclass(frozen=True)
    class ReplicasIntent(BodyIntent):
        kind: ClassVar[str] = "test-replicas"
        count: int
        api_version: str | None = None

        def satisfied_by(self, live: Any) -> bool:
            return live is not None and live.get("replicas") == self.count

        def apply(self, body: Any) -> dict[str, Any]:
            return {**(body or {}), "replicas": self.count}

        def fields(self) -> set[str]:
            return {"replicas"}

        def _payload(self) -> dict[str, Any]:
            return {"count": self.count}

        @classmethod
        def from_json(cls, data: Any) -> ReplicasIntent:
            return cls(int(data["count"]))

    loaded = intent_from_json({"kind": "test-replicas", "count": 3})
    assert loaded == ReplicasIntent(3)
    assert fold([loaded, MergeIntent({"x": 1})], {"replicas": 1}) == {"replicas": 3, "x": 1}
    with pytest.raises(TypeError, match="already registered"):

        @register_intent
        @dataclass(frozen=True)
        class Clash(ReplicasIntent):
            pass
