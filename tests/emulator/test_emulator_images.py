"""The image catalog over HTTP: bare JSON arrays as the real API answers, read-only."""

from __future__ import annotations

from arm_helpers import SUB, Arm, error_code

BASE = f"{SUB}/providers/Microsoft.Compute/locations/westus"
JAMMY = f"{BASE}/publishers/Canonical/artifacttypes/vmimage/offers/0001-com-ubuntu-server-jammy"


def test_lists_are_bare_arrays_and_versions_honour_top_and_orderby(arm: Arm) -> None:
    publishers = arm.get(f"{BASE}/publishers").json()
    assert isinstance(publishers, list)
    assert {"location", "name", "id"} <= set(publishers[0])
    newest = arm.get(
        f"{JAMMY}/skus/22_04-lts-gen2/versions", params={"$top": "1", "$orderby": "name desc"}
    ).json()
    assert [v["name"] for v in newest] == ["22.04.202411190"]
    assert newest[0]["id"].endswith("/Skus/22_04-lts-gen2/Versions/22.04.202411190")
    latest = arm.get(f"{JAMMY}/skus/22_04-lts-gen2/versions/latest").json()
    assert latest["name"] == "22.04.202411190"
    bad = arm.get(f"{JAMMY}/skus/22_04-lts-gen2/versions", params={"$top": "many"})
    assert (bad.status_code, error_code(bad)) == (400, "InvalidParameter")


def test_the_catalog_cannot_be_written(arm: Arm) -> None:
    version = f"{JAMMY}/skus/22_04-lts-gen2/versions/22.04.202411190"
    assert arm.put(version, {"location": "westus"}).status_code == 405
    assert arm.delete(version).status_code == 405
    assert arm.get(version).status_code == 200
