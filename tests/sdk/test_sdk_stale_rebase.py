"""The seeds' stale writer with the official network SDK and its model objects on both sides:
a Python app reads an NSG with the SDK, a portal-style writer changes it with the SDK (a blind
``begin_create_or_update`` without If-Match), and the app then hands armguard the model it read
(``as_dict()``: the REST body, read-only fields and ETag included) as the baseline of its intents."""

from __future__ import annotations

from pathlib import Path

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkSecurityGroup
from sdk_helpers import RG, RG_ID, SUB

from armguard import Coordinator, Outcome, TagsIntent
from armguard.testing import EmulatorHandle


def test_a_baseline_read_with_the_sdk_is_rebased_three_way(
    arm: EmulatorHandle, resources: object, tmp_path: Path
) -> None:
    network = arm.client(NetworkManagementClient, subscription_id=SUB)
    network.network_security_groups.begin_create_or_update(
        RG, "nsg-app", NetworkSecurityGroup(location="eastus", tags={"env": "prod", "owner": "a"})
    ).result()
    read = network.network_security_groups.get(RG, "nsg-app")  # the app's read, a model
    baseline = read.as_dict()  # TypeSpec models are mappings of the REST body
    assert baseline["etag"] == read.etag

    # The portal: read, change, PUT the whole model back without If-Match.
    portal = network.network_security_groups.get(RG, "nsg-app")
    portal.tags = {**(portal.tags or {}), "owner": "b", "hotfix": "INC-1"}
    portal.etag = None
    network.network_security_groups.begin_create_or_update(RG, "nsg-app", portal).result()

    nsg_id = f"{RG_ID}/providers/Microsoft.Network/networkSecurityGroups/nsg-app"
    with Coordinator(str(tmp_path / "jobs.db"), writer="app", clock=arm.clock) as armguard:
        mine = armguard.submit(nsg_id, TagsIntent({"release": "r7"}), baseline=baseline)
        theirs = armguard.submit(nsg_id, TagsIntent({"owner": "c"}), baseline=baseline)
        armguard.run_worker(arm.base_url)
        assert armguard.get(mine).outcome is Outcome.APPLIED
        refused = armguard.get(theirs)
        assert (refused.outcome, refused.kind) == (Outcome.FAILED, "stale_version")

    final = network.network_security_groups.get(RG, "nsg-app")
    assert final.tags == {"env": "prod", "owner": "b", "hotfix": "INC-1", "release": "r7"}
    # What the provider computes stays its own: armguard wrote only the app's change on top.
    assert read.resource_guid
    assert final.resource_guid == read.resource_guid
