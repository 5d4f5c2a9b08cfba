"""Explanations name the facts of the error and give the recovery its kind requires."""

from __future__ import annotations

import json
from pathlib import Path

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


INCIDENT = Path(__file__).parent / "data" / "incident.json"


def test_an_activity_log_export_is_several_errors_each_explained() -> None:
    e = explain_text(INCIDENT.read_text())
    # The lock is the one a person must act on: it comes first, and the top-level kind is it.
    assert e.kind is ConflictKind.LOCKED
    assert e.facts.format == "activity_log"
    listed = [(x.explanation.kind.value, x.explanation.facts.code, x.count) for x in e.errors]
    assert listed == [
        ("locked", "ScopeLocked", 1),
        ("stale_version", "PreconditionFailed", 2),
        ("operation_in_progress", "OperationNotAllowed", 1),
        # Seven refusals of one retry storm are one error said seven times.
        ("operation_in_progress", "AnotherOperationInProgress", 7),
    ]
    data = e.to_json()
    assert data["kind"] == "locked"
    assert [x["kind"] for x in data["errors"]] == [k for k, _, _ in listed]
    # Each one is explained with its own facts, not the paste's.
    stale = data["errors"][1]
    assert stale["status"] == 412
    assert any("nsg-app" in r for r in stale["resourceIds"])
    assert stale["recovery"][0].startswith("Re-read")
    in_progress = data["errors"][3]
    assert in_progress["operationUrl"] is not None
    assert in_progress["resourceIds"]
    assert all("virtualnetworks" in r.lower() for r in in_progress["resourceIds"])


def test_one_error_said_many_times_is_one_error_counted() -> None:
    body = json.dumps({"error": {"code": "AnotherOperationInProgress", "message": "busy"}})
    e = explain_text("\n".join([body] * 5))
    assert e.kind is ConflictKind.OPERATION_IN_PROGRESS
    (only,) = e.to_json()["errors"]
    assert (only["kind"], only["count"]) == ("operation_in_progress", 5)
    single = explain_text(body).to_json()["errors"]
    assert [(x["kind"], x["count"]) for x in single] == [("operation_in_progress", 1)]


@pytest.mark.parametrize(
    ("text", "source"),
    [
        (
            'Error from server (Conflict): error when applying patch:\nName: "web", Namespace: '
            '"default"\nfor: "deploy.yaml": Operation cannot be fulfilled on deployments.apps '
            '"web": the object has been modified; please apply your changes to the latest version '
            "and try again",
            "a Kubernetes API",
        ),
        (
            "ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - The resource "
            "'projects/acme/zones/us-central1-a/instances/vm-1' already exists",
            "a Google Cloud",
        ),
        (
            "An error occurred (ConditionalCheckFailedException) when calling the PutItem "
            "operation: The conditional request failed",
            "an AWS",
        ),
    ],
)
def test_errors_of_other_apis_get_a_kind_and_say_what_they_are(text: str, source: str) -> None:
    # An error is never refused; a paste from another cloud says so, with low confidence,
    # because ARM's vocabulary read over another API's words is a guess.
    e = explain_text(text)
    data = e.to_json()
    assert data["foreignSource"] == source
    assert data["confidence"] == "low"
    assert data["kind"] in {k.value for k in ConflictKind}


def test_an_arm_error_that_mentions_kubectl_is_still_arm() -> None:
    e = explain_text(
        "ERROR: (OperationNotAllowed) Operation is not allowed: Another operation (Updating) is "
        "in progress, please wait for it to finish before starting a new operation. See "
        "https://aka.ms/aks-pending-operation for more details\nkubectl get nodes shows 3 Ready"
    )
    assert e.kind is ConflictKind.OPERATION_IN_PROGRESS


def test_a_parent_with_nested_resources_is_deleted_after_them() -> None:
    e = explain_text(
        'Status=409 Code="CannotDeleteResource" Message="Cannot delete resource while nested '
        "resources exist. Some existing nested resource IDs include: 'Microsoft.Network/"
        "privateDnsZones/z.example/virtualNetworkLinks/link-1'. Please delete all nested "
        'resources before deleting this resource."'
    )
    assert e.kind is ConflictKind.STATE_PREREQUISITE
    assert e.classification.prerequisite == "delete_nested"
    assert "nested resources" in e.meaning
    assert any("wait until each returns 404" in step for step in e.recovery)


def test_a_missing_registration_says_which_provider_to_register_once() -> None:
    e = explain_text(
        "ERROR: (MissingSubscriptionRegistration) The subscription is not registered to use "
        "namespace 'Microsoft.Sql'. See https://aka.ms/rps-not-found for how to register "
        "subscriptions."
    )
    assert e.kind is ConflictKind.NOT_REGISTERED
    assert "Microsoft.Sql" in e.meaning
    assert e.recovery[0].startswith(
        "Register it once: az provider register --namespace Microsoft.Sql"
    )
    commands = [c.command for c in e.next_commands]
    assert "az provider register --namespace Microsoft.Sql" in commands
    assert any("policy" in w for w in e.wrong_fix)


def test_a_missing_role_names_the_action_and_scope_to_grant() -> None:
    scope = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/app"
    e = explain_text(
        "Error type: AuthorizationFailed\nError Message: The client 'x' with object id 'y' does "
        f"not have authorization to perform action 'Microsoft.Web/sites/write' over scope "
        f"'{scope}' or the scope is invalid."
    )
    assert e.kind is ConflictKind.NOT_AUTHORIZED
    assert "Microsoft.Web/sites/write" in e.meaning
    assert scope in e.meaning
    assert not e.kind.retryable
    assert any(
        c.command.startswith("az role assignment list") and scope in c.command
        for c in e.next_commands
    )
    data = e.to_json()
    assert (data["confidence"], data["decidedBy"][0]) == ("high", "code:AuthorizationFailed")
