"""Management locks: CanNotDelete and ReadOnly, inherited downwards; lock CRUD exempt."""

from __future__ import annotations

from arm_helpers import RG, STORAGE, SUB, VNET, Arm, error_code, vnet_body

from armguard.testing import EmulatorHandle

LOCKS = "providers/Microsoft.Authorization/locks"


def lock(arm: Arm, scope: str, name: str, level: str) -> None:
    response = arm.put(f"{scope}/{LOCKS}/{name}", {"properties": {"level": level, "notes": "n"}})
    assert response.status_code == 201, response.text


def test_can_not_delete_blocks_deletes_only(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(VNET, vnet_body("a"))
    served.advance(10)
    lock(arm, group, "nodelete", "CanNotDelete")
    assert arm.put(VNET, vnet_body("a")).status_code == 200
    served.advance(10)
    refused = arm.delete(VNET)
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "ScopeLocked",
        "message": f"The scope '{VNET}' cannot perform delete operation because following "
        f"scope(s) are locked: '{SUB}/resourcegroups/rg1'. Please remove the lock and try again.",
        "details": [],
    }


def test_read_only_blocks_writes_and_posts(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(STORAGE, {"location": "eastus"})
    served.advance(20)
    assert arm.post(f"{STORAGE}/listKeys").status_code == 200
    lock(arm, STORAGE, "ro", "ReadOnly")
    for response in (
        arm.post(f"{STORAGE}/listKeys"),
        arm.patch(STORAGE, {"tags": {"a": "b"}}),
        arm.put(STORAGE, {"location": "eastus"}),
        arm.delete(STORAGE),
        arm.put(
            f"{STORAGE}/providers/Microsoft.Resources/tags/default", {"properties": {"tags": {}}}
        ),
    ):
        assert response.status_code == 409
        assert error_code(response) == "ScopeLocked"
    assert "cannot perform write operation" in arm.post(f"{STORAGE}/listKeys").text
    # The group itself is not below the lock.
    assert arm.patch(group, {"tags": {"x": "y"}}).status_code == 200


def test_locked_child_blocks_deleting_its_group(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(STORAGE, {"location": "eastus"})
    served.advance(20)
    lock(arm, STORAGE, "keep", "CanNotDelete")
    refused = arm.delete(group)
    assert error_code(refused) == "ScopeLocked"
    assert f"'{STORAGE.replace('resourceGroups', 'resourcegroups')}'" in refused.text


def test_locks_are_listed_with_inherited_ones_and_stay_removable(arm: Arm, group: str) -> None:
    lock(arm, SUB, "sub-ro", "ReadOnly")
    lock(arm, group, "rg-nd", "CanNotDelete")
    at_group = arm.get(f"{group}/{LOCKS}").json()["value"]
    assert {lk["name"] for lk in at_group} == {"sub-ro", "rg-nd"}
    assert arm.get(f"{group}/{LOCKS}/rg-nd").json()["properties"]["level"] == "CanNotDelete"
    assert error_code(arm.patch(group, {"tags": {}})) == "ScopeLocked"
    assert arm.delete(f"{SUB}/{LOCKS}/sub-ro").status_code == 200
    assert arm.delete(f"{group}/{LOCKS}/rg-nd").status_code == 200
    assert arm.patch(group, {"tags": {}}).status_code == 200
    assert arm.get(f"{group}/{LOCKS}").json()["value"] == []


def test_bad_lock_level_is_rejected(arm: Arm, group: str) -> None:
    response = arm.put(f"{RG}/{LOCKS}/x", {"properties": {"level": "Sometimes"}})
    assert response.status_code == 400
