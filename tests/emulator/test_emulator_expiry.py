"""Settled operations expire: their status URLs answer for a retention period (on the
emulator clock) and within a cap on how many are kept, then 404, so memory stays flat."""

from __future__ import annotations

import httpx
from arm_helpers import NET, VNET, Arm, vnet_body

from armguard.testing import EmulatorHandle


def _urls(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code in (200, 201), response.text
    return response.headers["Azure-AsyncOperation"], response.headers["Location"]


def _gone(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.json()["error"]["code"] == "OperationNotFound"


def test_status_urls_answer_until_the_retention_ends(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    served.core.store.retention = 60
    status, location = _urls(arm.put(VNET, vnet_body("a")))
    served.advance(6)  # it ended at 5 s
    assert arm.get(status).json()["status"] == "Succeeded"
    served.advance(58)
    assert arm.get(status).json()["status"] == "Succeeded"
    assert arm.get(location).status_code == 200
    served.advance(2)
    assert _gone(arm.get(status))
    assert _gone(arm.get(location))
    # The resource itself is untouched: only the operation's record is gone.
    assert arm.get(VNET).json()["properties"]["provisioningState"] == "Succeeded"


def test_at_most_the_cap_of_settled_operations_is_kept(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    served.core.store.max_settled = 2
    urls = []
    for n in range(4):
        urls.append(_urls(arm.put(f"{NET}/virtualNetworks/v{n}", vnet_body(str(n))))[0])
        served.advance(6)
        assert arm.get(urls[-1]).json()["status"] == "Succeeded"
    assert [_gone(arm.get(url)) for url in urls] == [True, True, False, False]
    assert len(served.core.store.operations()) == 2
    # A running operation is never expired, whatever the cap.
    served.core.store.max_settled = 0
    running, _ = _urls(arm.put(f"{NET}/virtualNetworks/v9", vnet_body("9")))
    assert arm.get(running).json()["status"] == "InProgress"
