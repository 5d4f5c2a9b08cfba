"""``inspect`` against the served emulator, over HTTP, in the seeds' real situations."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.arm.ids import ResourceId
from armguard.diagnose.inspect import (
    InspectError,
    Inspection,
    Intent,
    inspect_resource,
    parse_intent,
)
from armguard.testing import DEFAULT_SUBSCRIPTION, EmulatorHandle, ManualClock, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/prod-rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/api-01"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-prod"
SUBNET = f"{VNET}/subnets/subnet-app"
COMPUTE = "2024-07-01"
NETWORK = "2024-05-01"
LOCKS = "2020-05-01"
SETTLE = 900.0  # longer than any emulated operation


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with emulator(clock=ManualClock()) as handle:
        yield handle


@pytest.fixture
def client(arm: EmulatorHandle) -> Iterator[Callable[[str], ArmClient]]:
    made: list[ArmClient] = []

    def make(caller: str) -> ArmClient:
        c = ArmClient(StaticIdentityCredential(caller), endpoint=arm.base_url)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _ok(status: int) -> None:
    assert 200 <= status < 300, status


def _group(c: ArmClient) -> None:
    _ok(c.request("PUT", RG, api_version="2021-04-01", body={"location": "eastus"}).status)


def _vm(arm: EmulatorHandle, c: ArmClient, size: str = "Standard_D2s_v5") -> None:
    _group(c)
    body = {"location": "eastus", "properties": {"hardwareProfile": {"vmSize": size}}}
    _ok(c.request("PUT", VM, api_version=COMPUTE, body=body).status)
    arm.advance(SETTLE)


def _vnet(arm: EmulatorHandle, c: ArmClient, *subnets: str) -> None:
    _group(c)
    body = {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [
                {"name": name, "properties": {"addressPrefix": f"10.0.{n}.0/24"}}
                for n, name in enumerate(subnets, 1)
            ],
        },
    }
    _ok(c.request("PUT", VNET, api_version=NETWORK, body=body).status)
    arm.advance(SETTLE)


def _inspect(
    arm: EmulatorHandle,
    c: ArmClient,
    rid: str,
    *,
    intent: Intent | None = None,
    etag: str | None = None,
) -> Inspection:
    return inspect_resource(c, ResourceId.parse(rid), clock=arm.clock, intent=intent, etag=etag)


def test_a_settled_vm_is_clear_and_its_state_is_reported(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    _vm(arm, client("pipeline@contoso.com"))
    result = _inspect(arm, client("inspector"), VM)
    assert result.clear
    assert (result.exists, result.provisioning_state, result.power_state) == (
        True,
        "Succeeded",
        "running",
    )
    assert result.etag
    assert result.vm_size == "Standard_D2s_v5"
    assert [o.caller for o in result.recent_writes] == ["pipeline@contoso.com"]
    assert result.verdict().startswith("A write would go through now")


def test_a_vm_mid_deallocate_names_the_operation_and_who_started_it(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    _vm(arm, client("pipeline@contoso.com"))
    bob = client("bob@contoso.com")
    _ok(bob.request("POST", f"{VM}/deallocate", api_version=COMPUTE).status)
    arm.advance(2)
    result = _inspect(arm, client("inspector"), VM, intent=parse_intent("resize:Standard_D4s_v5"))
    assert not result.clear
    assert result.power_state == "deallocating"
    (blocker,) = result.blockers
    assert blocker.kind == "operation_in_progress"
    assert blocker.caller == "bob@contoso.com"
    assert "deallocate" in blocker.reason
    assert "PowerState/deallocating" in blocker.reason
    assert [o.operation for o in result.running_operations] == [
        "Microsoft.Compute/virtualMachines/deallocate/action"
    ]
    # Once the deallocate ends, the resize is clear: the VM is deallocated.
    arm.advance(SETTLE)
    after = _inspect(arm, client("inspector"), VM, intent=parse_intent("resize:Standard_D4s_v5"))
    assert after.power_state == "deallocated"
    assert after.clear, after.blockers


def test_resizing_a_running_vm_needs_a_deallocate_first(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    _vm(arm, client("pipeline@contoso.com"))
    result = _inspect(arm, client("inspector"), VM, intent=parse_intent("resize:Standard_D4s_v5"))
    (blocker,) = result.blockers
    assert blocker.kind == "state_prerequisite"
    assert "Deallocate first" in blocker.action
    # The emulator agrees: the resize itself is refused for exactly that reason.
    refused = client("alice@contoso.com").request(
        "PATCH",
        VM,
        api_version=COMPUTE,
        body={"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}},
    )
    assert refused.status == 409
    assert refused.classification().kind == "state_prerequisite"
    same = _inspect(arm, client("inspector"), VM, intent=Intent("resize", "standard_d2s_v5"))
    assert same.clear
    assert any("already satisfied" in n for n in same.notes)


def test_a_read_only_lock_on_the_group_blocks_and_is_left_to_a_person(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    admin = client("governance@contoso.com")
    _vnet(arm, admin, "subnet-app")
    lock_id = f"{RG}/providers/Microsoft.Authorization/locks/freeze"
    body = {"properties": {"level": "ReadOnly", "notes": "change freeze"}}
    _ok(admin.request("PUT", lock_id, api_version=LOCKS, body=body).status)
    result = _inspect(arm, client("inspector"), SUBNET)
    (lock,) = result.locks
    assert (lock.level, lock.inherited, lock.scope) == ("ReadOnly", True, RG)
    (blocker,) = result.blockers
    assert blocker.kind == "locked"
    assert blocker.lock_id == lock_id
    assert "change freeze" in blocker.reason
    assert "never remove" in blocker.action
    # The emulator agrees.
    write = client("ops-bot").request(
        "PUT", SUBNET, api_version=NETWORK, body={"properties": {"addressPrefix": "10.0.1.0/24"}}
    )
    assert write.classification().kind == "locked"


def test_a_cannot_delete_lock_blocks_deletes_only(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    admin = client("governance@contoso.com")
    _vm(arm, admin)
    lock_id = f"{VM}/providers/Microsoft.Authorization/locks/keep"
    _ok(
        admin.request(
            "PUT", lock_id, api_version=LOCKS, body={"properties": {"level": "CanNotDelete"}}
        ).status
    )
    inspector = client("inspector")
    write = _inspect(arm, inspector, VM)
    assert write.clear
    assert any("CanNotDelete" in n for n in write.notes)
    delete = _inspect(arm, inspector, VM, intent=parse_intent("delete"))
    (blocker,) = delete.blockers
    assert (blocker.kind, blocker.lock_id) == ("locked", lock_id)
    assert write.locks[0].inherited is False


def test_a_vnet_updating_blocks_its_subnet_with_the_operation_url(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    pipeline = client("pipeline@contoso.com")
    _vnet(arm, pipeline, "subnet-app", "subnet-db")
    body = {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16", "10.1.0.0/16"]},
            "subnets": [
                {"name": "subnet-app", "properties": {"addressPrefix": "10.0.1.0/24"}},
                {"name": "subnet-db", "properties": {"addressPrefix": "10.0.2.0/24"}},
            ],
        },
    }
    _ok(pipeline.request("PUT", VNET, api_version=NETWORK, body=body).status)
    arm.advance(1)
    refused = client("ops-bot").request(
        "PUT", SUBNET, api_version=NETWORK, body={"properties": {"addressPrefix": "10.0.1.0/24"}}
    )
    assert refused.status == 409
    url = refused.classification().operation_url
    assert url
    result = _inspect(arm, client("inspector"), SUBNET)
    # The VNet's PUT holds the subnet and the VNet: one blocker, naming it.
    (held,) = result.blockers
    assert held.kind == "operation_in_progress"
    assert held.caller == "pipeline@contoso.com"
    assert f"Microsoft.Network/virtualNetworks/write on {VNET}" in held.reason
    assert held.operation_url == url
    assert url in held.action
    assert {r.resource_id for r in result.related if r.running} >= {VNET}
    assert {r.relation for r in result.related} >= {"resource", "parent", "sibling"}
    assert any(o.caller == "ops-bot" and o.outcome == "conflict" for o in result.recent_writes)
    arm.advance(SETTLE)
    assert _inspect(arm, client("inspector"), SUBNET).clear


def test_a_stale_etag_is_compared_with_the_live_one(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    writer = client("terraform@contoso.com")
    _vnet(arm, writer, "subnet-app")
    old = writer.request("GET", VNET, api_version=NETWORK).etag
    assert old
    _ok(writer.request("PATCH", VNET, api_version=NETWORK, body={"tags": {"env": "prod"}}).status)
    arm.advance(SETTLE)
    live = writer.request("GET", VNET, api_version=NETWORK).etag
    assert live
    assert live != old
    inspector = client("inspector")
    stale = _inspect(arm, inspector, VNET, etag=old)
    (blocker,) = stale.blockers
    assert blocker.kind == "stale_version"
    assert f"If-Match: {live}" in blocker.action
    assert f"Never resend {old}" in blocker.action
    fresh = _inspect(arm, inspector, VNET, etag=live)
    assert fresh.clear
    assert "The ETag given matches the live one." in fresh.notes


def test_missing_resources_and_groups(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    inspector = client("inspector")
    nothing = _inspect(arm, inspector, VM)
    assert not nothing.exists
    (blocker,) = nothing.blockers
    assert (blocker.kind, blocker.resource_id) == ("not_found", RG)
    _group(client("pipeline@contoso.com"))
    creatable = _inspect(arm, inspector, VM)
    assert creatable.clear
    assert any("a PUT would create it" in n for n in creatable.notes)
    gone = _inspect(arm, inspector, VM, etag='"3"')
    assert [b.kind for b in gone.blockers] == ["stale_version"]


def test_a_missing_resource_gets_one_consistent_verdict(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    inspector = client("inspector")
    _group(client("pipeline@contoso.com"))
    # The VNet is missing too: a PUT of the subnet is refused, and nothing says it would work.
    orphan = _inspect(arm, inspector, SUBNET)
    assert [(b.kind, b.resource_id) for b in orphan.blockers] == [("not_found", VNET)]
    assert not any("a PUT would create it" in n for n in orphan.notes)
    assert any(f"neither does {VNET}: a PUT is refused" in n for n in orphan.notes)
    assert orphan.verdict().startswith("A write would be refused now (not_found)")
    # Deleting what is not there has nothing to do, whatever is missing above it.
    gone = _inspect(arm, inspector, SUBNET, intent=Intent("delete"))
    assert gone.clear
    assert gone.verdict() == "A delete has nothing to do now: the resource does not exist."
    # A resize needs a VM.
    absent_vm = _inspect(arm, inspector, VM, intent=Intent("resize", "Standard_D4s_v5"))
    assert [b.kind for b in absent_vm.blockers] == ["not_found"]
    assert "nothing to resize" in absent_vm.blockers[0].reason
    creatable = _inspect(arm, inspector, VM)
    assert creatable.verdict().startswith("A write would go through now and create the resource")


def test_a_nic_on_a_subnet_holds_it_while_written_and_blocks_its_delete(
    arm: EmulatorHandle, client: Callable[[str], ArmClient]
) -> None:
    pipeline, inspector = client("pipeline@contoso.com"), client("inspector")
    _vnet(arm, pipeline, "subnet-app")
    nic = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic-1"
    body = {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [{"name": "ip1", "properties": {"subnet": {"id": SUBNET}}}]
        },
    }
    _ok(pipeline.request("PUT", nic, api_version=NETWORK, body=body).status)
    busy = _inspect(arm, inspector, SUBNET)
    dependents = [r for r in busy.related if r.relation == "dependent"]
    assert [(r.resource_id.lower(), r.running) for r in dependents] == [(nic.lower(), True)]
    (blocker,) = [b for b in busy.blockers if b.resource_id.lower() == nic.lower()]
    assert blocker.kind == "operation_in_progress"
    assert "which references it, is" in blocker.reason
    # ARM really refuses a write to the subnet meanwhile: the verdict is not a guess.
    refused = pipeline.request(
        "PUT", SUBNET, api_version=NETWORK, body={"properties": {"addressPrefix": "10.0.1.0/24"}}
    )
    assert refused.status == 409
    arm.advance(SETTLE)
    assert _inspect(arm, inspector, SUBNET).clear
    delete = _inspect(arm, inspector, SUBNET, intent=Intent("delete"))
    (in_use,) = delete.blockers
    assert in_use.kind == "state_prerequisite"
    assert nic.lower() in in_use.reason.lower()
    assert pipeline.request("DELETE", SUBNET, api_version=NETWORK).status == 400


def test_bad_intents_and_unreachable_endpoints() -> None:
    with pytest.raises(ValueError, match="use write, delete or resize:SIZE"):
        parse_intent("scale")
    with pytest.raises(ValueError, match="not a VM size"):
        parse_intent("resize:<b>")
    with pytest.raises(ValueError, match="applies to virtual machines"):
        inspect_resource(
            ArmClient(StaticIdentityCredential("x"), endpoint="http://127.0.0.1:9"),
            ResourceId.parse(VNET),
            clock=ManualClock(),
            intent=Intent("resize", "Standard_D4s_v5"),
        )
    with pytest.raises(InspectError, match="cannot reach ARM") as info:
        inspect_resource(
            ArmClient(StaticIdentityCredential("x"), endpoint="http://127.0.0.1:9", timeout=5),
            ResourceId.parse(VM),
            clock=ManualClock(),
        )
    assert info.value.unreachable
