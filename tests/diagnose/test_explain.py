"""Explanations name the facts of the error and give the recovery its kind requires."""

from __future__ import annotations

import json

import pytest

from armguard.arm.classify import ConflictKind
from armguard.diagnose.explain import Explanation, NoArmError, explain_text

SUB = "11111111-2222-3333-4444-555555555555"
RG = f"/subscriptions/{SUB}/resourceGroups/prod-rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/api-01"
PIP = f"{RG}/providers/Microsoft.Network/publicIPAddresses/pip-1"
OP_URL = (
    f"https://management.azure.com/subscriptions/{SUB}/providers/Microsoft.Network/locations/"
    "eastus/operations/3f9b2c1a?api-version=2024-05-01"
)


def commands(e: Explanation, tool: str = "az") -> list[str]:
    return [c.command for c in e.next_commands if c.tool == tool]


def test_operation_in_progress_polls_the_named_operation() -> None:
    e = explain_text(
        "(AnotherOperationInProgress) Another operation on this or dependent resource is in "
        f"progress. To retrieve status of the operation use uri: {OP_URL}.\n"
        f"Code: AnotherOperationInProgress\nMessage: see {PIP}"
    )
    assert e.kind is ConflictKind.OPERATION_IN_PROGRESS
    assert OP_URL in e.meaning
    assert e.recovery[0] == f"Poll {OP_URL} until its status is Succeeded, Failed or Canceled."
    assert f'az rest --method get --url "{OP_URL}"' in commands(e)
    assert any("fixed sleep" in w for w in e.wrong_fix)
    assert any("retry storm" in w for w in e.wrong_fix)


def test_retry_after_is_an_earliest_poll_time_not_a_sleep() -> None:
    e = explain_text(
        'Status=429 Code="RetryableError" Message="A retryable error occurred." '
        'Details=[{"code":"RetryableErrorDueToAnotherOperation","message":"Operation '
        'PutSubnetOperation (a) is updating resource b. The call can be retried in 13 seconds."}]'
    )
    assert e.kind is ConflictKind.OPERATION_IN_PROGRESS
    assert e.retry_after == 13.0
    assert "13 s" in e.recovery[1]
    assert "not as a fixed sleep" in e.recovery[1]


def test_stale_version_names_both_etags_and_forbids_replaying_them() -> None:
    body = {
        "error": {
            "code": "PreconditionFailed",
            "message": "Precondition failed.",
            "details": [
                {
                    "code": "PreconditionFailedEtagMismatch",
                    "message": f'Etag provided in if-match header W/"old-1" does not match etag W/"new-2" of resource {PIP}',
                }
            ],
        }
    }
    e = explain_text(json.dumps(body))
    assert e.kind is ConflictKind.STALE_VERSION
    assert e.etags == ('W/"old-1"', 'W/"new-2"')
    assert 'W/"old-1"' in e.meaning
    assert 'W/"new-2"' in e.meaning
    assert "publicIPAddresses 'pip-1'" in e.meaning
    assert any("If-Match" in step for step in e.recovery)
    assert any("same stale ETag" in w for w in e.wrong_fix)
    assert any("last-writer-wins" in w for w in e.wrong_fix)
    assert any(c.startswith(f'az resource show --ids "{PIP}"') for c in commands(e))
    assert f'armguard inspect "{PIP}"' in commands(e, "armguard")


def test_resize_needing_deallocation_gives_the_transition_with_ids() -> None:
    e = explain_text(
        f"Code: OperationNotAllowed\nMessage: Unable to resize the VM {VM} because the requested "
        "size Standard_D4s_v5 is not available in the cluster where the VM is currently "
        "allocated. To resize your VM to Standard_D4s_v5 please deallocate (this is Stop "
        "operation in the Azure portal) and try the resize operation again."
    )
    assert e.kind is ConflictKind.STATE_PREREQUISITE
    assert e.classification.prerequisite == "deallocate"
    assert e.recovery[0] == f'Deallocate it: az vm deallocate --ids "{VM}" --no-wait.'
    assert "PowerState/deallocated" in e.recovery[1]
    assert "Resize to Standard_D4s_v5" in e.recovery[2]
    assert any(c.startswith(f'az vm get-instance-view --ids "{VM}"') for c in commands(e))
    assert any("fixed sleep" in w for w in e.wrong_fix)


def test_state_error_without_an_id_names_the_vm_by_group_and_name() -> None:
    e = explain_text(
        f'Error: powering off Virtual Machine (Subscription: "{SUB}"\nResource Group Name: '
        '"prod-rg"\nVirtual Machine Name: "api-01"): performing PowerOff: unexpected status 409 '
        "(409 Conflict) with error: OperationNotAllowed: Operation 'powerOff' is not allowed on "
        "VM 'api-01' since the VM is either deallocated or marked to be deallocated."
    )
    assert e.kind is ConflictKind.STATE_PREREQUISITE
    assert "VM 'api-01'" in e.meaning
    assert any("already there" in step for step in e.recovery)
    assert any(
        c.startswith("az vm get-instance-view --resource-group prod-rg --name api-01")
        for c in commands(e)
    )


def test_locked_names_the_scope_and_never_suggests_removing_it() -> None:
    e = explain_text(
        f"(ScopeLocked) The scope '{PIP}' cannot perform delete operation because following "
        f"scope(s) are locked: '{RG.replace('resourceGroups', 'resourcegroups')}'. Please remove "
        "the lock and try again."
    )
    assert e.kind is ConflictKind.LOCKED
    assert e.classification.locked_scopes == (RG.replace("resourceGroups", "resourcegroups"),)
    assert "delete" in e.meaning
    assert "prod-rg" in e.meaning
    assert not any("remove the lock" in step.lower() for step in e.recovery)
    assert any("Removing or bypassing the lock" in w for w in e.wrong_fix)
    assert "az lock list --resource-group prod-rg --output table" in commands(e)


def test_deployment_active_points_at_the_deployment_operations() -> None:
    e = explain_text(
        "RestError: Unable to edit or replace deployment 'app-rollout': previous deployment from "
        "'1/2/2026 3:01:12 AM' is still active (expiration time is '1/9/2026 3:01:10 AM').\n"
        f"  code: 'DeploymentActive',\n  statusCode: 409,\n  target: '{RG}'"
    )
    assert e.kind is ConflictKind.OPERATION_IN_PROGRESS
    assert "'app-rollout'" in e.meaning
    assert any(
        c.startswith(
            "az deployment operation group list --resource-group prod-rg --name app-rollout"
        )
        for c in commands(e)
    )


def test_throttled_uses_retry_after_and_budget() -> None:
    e = explain_text(
        "HttpResponseError: (SubscriptionRequestsThrottled) Number of write requests for "
        "subscription 's' exceeded the limit of '1200' for time interval '01:00:00'. Please try "
        "again after '5' minutes.\nCode: SubscriptionRequestsThrottled"
    )
    assert e.kind is ConflictKind.THROTTLED
    assert e.retry_after == 300.0
    assert e.recovery[0].startswith("Wait 300 s")
    assert any("parallel workers" in w for w in e.wrong_fix)


def test_unknown_409_still_gives_diagnostics() -> None:
    e = explain_text("New-AzRoleAssignment: Operation returned an invalid status code 'Conflict'")
    assert e.kind is ConflictKind.UNKNOWN
    assert e.facts.status == 409
    assert any(c.startswith("az monitor activity-log list") for c in commands(e))


def test_json_shape_is_stable() -> None:
    e = explain_text(f"(Conflict) Another operation is in progress. {OP_URL}")
    data = e.to_json()
    for key in (
        "kind",
        "status",
        "code",
        "message",
        "details",
        "resourceIds",
        "operationUrl",
        "etags",
        "retryAfter",
        "lockedScopes",
        "prerequisite",
        "meaning",
        "recovery",
        "wrongFix",
        "nextCommands",
    ):
        assert key in data
    assert set(data["etags"]) == {"submitted", "live"}
    assert all(set(c) >= {"tool", "command"} for c in data["nextCommands"])
    assert {c["tool"] for c in data["nextCommands"]} == {"az", "armguard"}
    json.dumps(data)  # serialisable as it stands


@pytest.mark.parametrize("text", ["", "all good", "Deployment succeeded."])
def test_no_error_raises(text: str) -> None:
    with pytest.raises(NoArmError):
        explain_text(text)
