"""Tags at scope: PUT replaces, PATCH merges / replaces / deletes, 50 at most."""

from __future__ import annotations

from arm_helpers import SUB, Arm, error_code

from armguard.clock import ManualClock
from armguard.testing import emulator

TAGS = "providers/Microsoft.Resources/tags/default"


def test_tag_operations(arm: Arm, group: str) -> None:
    url = f"{group}/{TAGS}"
    assert arm.put(url, {"properties": {"tags": {"a": "1", "b": "2"}}}).status_code == 200
    merged = arm.patch(url, {"operation": "Merge", "properties": {"tags": {"b": "3", "c": "4"}}})
    assert merged.json()["properties"]["tags"] == {"a": "1", "b": "3", "c": "4"}
    deleted = arm.patch(
        url, {"operation": "Delete", "properties": {"tags": {"a": "", "c": "other"}}}
    )
    assert deleted.json()["properties"]["tags"] == {"b": "3", "c": "4"}
    replaced = arm.patch(url, {"operation": "Replace", "properties": {"tags": {"z": "9"}}})
    assert replaced.json()["properties"]["tags"] == {"z": "9"}
    assert arm.get(group).json()["tags"] == {"z": "9"}, "tags live on the scope itself"
    assert arm.delete(url).status_code == 200
    assert arm.get(url).json()["properties"]["tags"] == {}
    bad = arm.patch(url, {"operation": "Upsert", "properties": {"tags": {}}})
    assert bad.status_code == 400


def test_at_most_fifty_tags(arm: Arm, group: str) -> None:
    url = f"{group}/{TAGS}"
    fifty = {f"k{i}": "v" for i in range(50)}
    assert arm.put(url, {"properties": {"tags": fifty}}).status_code == 200
    over = arm.patch(url, {"operation": "Merge", "properties": {"tags": {"one": "more"}}})
    assert over.status_code == 400
    assert error_code(over) == "InvalidTagCount"


def test_subscription_tags(arm: Arm) -> None:
    url = f"{SUB}/{TAGS}"
    arm.put(url, {"properties": {"tags": {"env": "test"}}})
    assert arm.get(url).json()["properties"]["tags"] == {"env": "test"}


def test_tag_writes_can_be_slow_and_collide() -> None:
    settings = {"Microsoft.Resources/tags": {"async_put": True, "async_patch": True}}
    with emulator(clock=ManualClock(), type_settings=settings) as served:
        arm = Arm(served.base_url)
        group = f"{SUB}/resourceGroups/rg1"
        arm.put(group, {"location": "eastus"})
        first = arm.patch(
            f"{group}/{TAGS}", {"operation": "Merge", "properties": {"tags": {"a": "1"}}}
        )
        assert first.status_code == 200
        second = arm.patch(
            f"{group}/{TAGS}", {"operation": "Merge", "properties": {"tags": {"b": "2"}}}
        )
        assert second.status_code == 409
        assert error_code(second) == "ConflictingConcurrentWriteNotAllowed"
        arm.close()


def test_missing_scope_is_404(arm: Arm, group: str) -> None:
    response = arm.get(f"{group}/providers/Microsoft.Web/sites/none/{TAGS}")
    assert response.status_code == 404
