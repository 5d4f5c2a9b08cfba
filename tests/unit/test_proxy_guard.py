"""Judging blind PUTs: what a caller re-sends of a list it read is not a change of its own."""

from __future__ import annotations

import copy
from typing import Any

from armguard.proxy.guard import Mode, judge_blind_put
from armguard.proxy.seen import Seen

SUBNET = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a"


def _vnet(subnet_etag: str, prefix: str = "10.0.1.0/24", **tags: str) -> dict[str, Any]:
    return {
        "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v",
        "name": "v",
        "type": "Microsoft.Network/virtualNetworks",
        "etag": 'W/"vnet-' + subnet_etag + '"',
        "location": "eastus",
        "tags": dict(tags),
        "properties": {
            "provisioningState": "Succeeded",
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [
                {
                    "id": SUBNET,
                    "name": "a",
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "etag": 'W/"' + subnet_etag + '"',
                    "properties": {"addressPrefix": prefix, "provisioningState": "Succeeded"},
                }
            ],
        },
    }


def _as_an_sdk_sends(body: dict[str, Any]) -> dict[str, Any]:
    sent = copy.deepcopy(body)
    for key in ("id", "name", "type", "etag"):
        sent.pop(key)
    sent["properties"].pop("provisioningState")
    for subnet in sent["properties"]["subnets"]:
        subnet.pop("etag")
        subnet.pop("type")
        subnet["properties"].pop("provisioningState")
    return sent


def test_a_resent_list_with_its_read_only_members_left_out_is_not_a_change() -> None:
    read = _vnet("1")
    live = _vnet("2", owner="platform")  # the normalizer's write re-stamped the subnet
    sent = _as_an_sdk_sends(read)
    sent["tags"] = {"env": "prod"}
    verdict = judge_blind_put(Mode.MERGE, Seen(read["etag"], read), live, live["etag"], sent)
    assert verdict.action == "merge", verdict
    assert verdict.body is not None
    assert verdict.body["tags"] == {"owner": "platform", "env": "prod"}
    assert verdict.body["properties"]["subnets"][0]["properties"]["addressPrefix"] == "10.0.1.0/24"
    assert verdict.if_match == live["etag"]


def test_a_list_element_both_changed_is_refused_with_its_path() -> None:
    read = _vnet("1")
    live = _vnet("2", prefix="10.0.2.0/24")
    sent = _as_an_sdk_sends(read)
    sent["properties"]["subnets"][0]["properties"]["addressPrefix"] = "10.0.3.0/24"
    verdict = judge_blind_put(Mode.MERGE, Seen(read["etag"], read), live, live["etag"], sent)
    assert verdict.action == "refuse"
    assert [c.to_json()["path"] for c in verdict.conflicts] == ["properties.subnets"]


def test_guard_sends_the_version_the_caller_read_and_warn_only_records() -> None:
    read = _vnet("1")
    live = _vnet("2", owner="platform")
    sent = _as_an_sdk_sends(read)
    guarded = judge_blind_put(Mode.GUARD, Seen(read["etag"], read), live, live["etag"], sent)
    assert (guarded.action, guarded.if_match) == ("guard", read["etag"])
    warned = judge_blind_put(Mode.WARN, Seen(read["etag"], read), live, live["etag"], sent)
    assert (warned.action, warned.if_match, warned.body) == ("lost", None, None)


def test_without_etags_the_body_decides() -> None:
    read = {k: v for k, v in _vnet("1").items() if k != "etag"}
    same = copy.deepcopy(read)
    same["properties"]["subnets"][0]["etag"] = 'W/"other"'
    sent = _as_an_sdk_sends({**read, "etag": "x"})
    assert judge_blind_put(Mode.GUARD, Seen(None, read), same, None, sent).action == "send"
    moved = {**read, "tags": {"owner": "platform"}}
    assert judge_blind_put(Mode.GUARD, Seen(None, read), moved, None, sent).action == "refuse"


def test_a_caller_that_never_read_is_sent_and_recorded_a_create_is_just_sent() -> None:
    live = _vnet("1")
    assert judge_blind_put(Mode.GUARD, None, live, live["etag"], {}).action == "unread"
    assert judge_blind_put(Mode.GUARD, None, None, None, {}).action == "send"
