"""The classifier reads status, code, message and every detail together."""

from __future__ import annotations

from typing import Any

import pytest

from armguard.arm.classify import KNOWN_CODES, ConflictKind, classify, classify_error
from armguard.arm.errors import ErrorDetail

K = ConflictKind
SUB = "/subscriptions/0000/resourceGroups/rg"
NSG_OP = (
    "https://management.azure.com/subscriptions/0000/providers/Microsoft.Network/locations/"
    "eastus/operations/3f9b?api-version=2024-05-01"
)

# (status, code, message, details, expected kind)
CASES: list[tuple[int | None, str, str, list[dict[str, Any]], ConflictKind]] = [
    # locked — whatever else the text says
    (
        409,
        "ScopeLocked",
        f"The scope '{SUB}/x' cannot perform write operation because following scope(s) are locked: '{SUB}'. Please remove the lock and try again.",
        [],
        K.LOCKED,
    ),
    (
        409,
        "Conflict",
        "cannot perform delete operation because following scope(s) are locked: '/subscriptions/0000'. Please remove",
        [],
        K.LOCKED,
    ),
    # stale version
    (412, "PreconditionFailed", "Precondition failed.", [], K.STALE_VERSION),
    (
        409,
        "EtagMismatch",
        "Operation is not allowed: Another operation is in progress",
        [],
        K.STALE_VERSION,
    ),
    (
        409,
        "Conflict",
        "Newer version of resource '193f' exists. Data was not saved",
        [],
        K.STALE_VERSION,
    ),
    (
        None,
        "",
        'Etag provided in if-match header "2" does not match etag "3" of resource.',
        [],
        K.STALE_VERSION,
    ),
    # operation in progress, under many codes and statuses
    (
        409,
        "AnotherOperationInProgress",
        f"Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: {NSG_OP}.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        429,
        "RetryableError",
        "A retryable error occurred.",
        [
            {
                "code": "RetryableErrorDueToAnotherOperation",
                "message": "Operation PutSubnetOperation (x) is updating resource y. The call can be retried in 13 seconds.",
            }
        ],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        429,
        "RetryableError",
        "A retryable error occured.",
        [
            {
                "code": "ReferencedResourceNotProvisioned",
                "message": "is not in Succeeded state. Resource is in Updating state",
            }
        ],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "DeploymentActive",
        "Unable to edit or replace deployment 'd': previous deployment from '1/2/2026' is still active",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        200,
        "OperationPreempted",
        "Operation execution has been preempted by a more recent operation.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "ConflictingConcurrentWriteNotAllowed",
        "The operation was interrupted by a conflicting concurrent write on the same entity.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "OperationNotAllowed",
        "Operation is not allowed: Another operation (nodepool1 - Updating) is in progress, please wait",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "Conflict",
        "Another operation is pending for requested object.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "Conflict",
        "Cannot modify this web hosting plan because another operation is in progress.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        409,
        "OperationNotAllowed",
        "Operation 'start' is not allowed on VM 'v' since another operation is in progress.",
        [],
        K.OPERATION_IN_PROGRESS,
    ),
    (
        None,
        "ResourceDeploymentFailure",
        "canceled",
        [
            {
                "code": "CanceledAndSupersededDueToAnotherOperation",
                "message": "was canceled and superseded by operation Patch",
            }
        ],
        K.OPERATION_IN_PROGRESS,
    ),
    # state prerequisites: OperationNotAllowed as a power/lifecycle state
    (
        409,
        "OperationNotAllowed",
        "Operation 'powerOff' is not allowed on VM 'v' since the VM is either deallocated or marked to be deallocated.",
        [],
        K.STATE_PREREQUISITE,
    ),
    (
        409,
        "OperationNotAllowed",
        "Unable to resize the VM because the requested size Standard_D4s_v5 is not available in the cluster where the VM is currently allocated. To resize your VM to Standard_D4s_v5 please deallocate (this is Stop operation in the Azure portal)",
        [],
        K.STATE_PREREQUISITE,
    ),
    (
        409,
        "Conflict",
        "Disk resizing is allowed only when creating a VM or when the VM is deallocated.",
        [],
        K.STATE_PREREQUISITE,
    ),
    (
        409,
        "OperationNotAllowed",
        "Cannot modify extensions in the VM when the VM is not running.",
        [],
        K.STATE_PREREQUISITE,
    ),
    (
        400,
        "InUseSubnetCannotBeDeleted",
        "Subnet s is in use by /subscriptions/0000/x and cannot be deleted.",
        [],
        K.STATE_PREREQUISITE,
    ),
    (
        409,
        "OperationNotAllowed",
        "Operation 'x' is not allowed on VM 'v' since the VM is marked for deletion. You can only retry the Delete operation",
        [],
        K.STATE_PREREQUISITE,
    ),
    # not allowed: OperationNotAllowed as a quota, plus policy, SKU, immutability
    (
        409,
        "OperationNotAllowed",
        "Operation could not be completed as it results in exceeding approved Total Regional Cores quota.",
        [],
        K.NOT_ALLOWED,
    ),
    (403, "RequestDisallowedByPolicy", "Resource 'r' was disallowed by policy.", [], K.NOT_ALLOWED),
    (
        409,
        "PropertyChangeNotAllowed",
        "Changing property 'zones' is not allowed.",
        [],
        K.NOT_ALLOWED,
    ),
    (
        409,
        "SkuNotAvailable",
        "The requested size for resource is currently not available in location 'eastus'",
        [],
        K.NOT_ALLOWED,
    ),
    (
        400,
        "",
        "Provisioning failed. Message: Operation could not be completed as it results in exceeding approved Total Regional Cores quota.",
        [],
        K.NOT_ALLOWED,
    ),
    (
        400,
        "InvalidTemplateDeployment",
        "The template deployment is not valid.",
        [{"code": "QuotaExceeded", "message": "exceeding approved quota"}],
        K.NOT_ALLOWED,
    ),
    # throttled: a 429 without a concurrency cause, including OperationNotAllowed + TooManyRequests
    (
        429,
        "SubscriptionRequestsThrottled",
        "Number of write requests for subscription 's' exceeded the limit of '1200' for time interval '01:00:00'. Please try again after '5' minutes.",
        [],
        K.THROTTLED,
    ),
    (
        429,
        "OperationNotAllowed",
        "The server rejected the request because too many requests have been received for this subscription.",
        [{"code": "TooManyRequests", "message": "{}"}],
        K.THROTTLED,
    ),
    (None, "", "Number of read requests for subscription '**' exceeded the limit", [], K.THROTTLED),
    (429, "", "", [], K.THROTTLED),
    # transient
    (500, "InternalServerError", "Encountered internal server error.", [], K.TRANSIENT),
    (
        504,
        "GatewayTimeout",
        "The gateway did not receive a response within the specified time period.",
        [],
        K.TRANSIENT,
    ),
    (
        429,
        "",
        "",
        [
            {
                "code": "GatewayError",
                "message": "Error occurred in resource provider infrastructure services.",
            }
        ],
        K.TRANSIENT,
    ),
    (200, "InternalExecutionError", "An internal execution error occurred.", [], K.TRANSIENT),
    # not found / invalid / unknown
    (
        404,
        "ResourceNotFound",
        "The Resource 'x' under resource group 'rg' was not found.",
        [],
        K.NOT_FOUND,
    ),
    (None, "ResourceGroupNotFound", "Resource group 'rg' could not be found.", [], K.NOT_FOUND),
    (
        None,
        "",
        "The Resource 'a/b' under resource group 'rg' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        [],
        K.NOT_FOUND,
    ),
    (400, "InvalidTemplate", "Deployment template validation failed.", [], K.INVALID),
    (
        None,
        "BadRequest",
        "",
        [{"code": "LinkedInvalidPropertyId", "message": "Property id '' at path 'x' is invalid."}],
        K.INVALID,
    ),
    (409, "", "", [], K.UNKNOWN),
    (
        None,
        "ResourceDeploymentFailure",
        "The resource operation completed with terminal provisioning state 'Failed'.",
        [],
        K.UNKNOWN,
    ),
    (409, "SomethingBrandNew", "nobody has seen this", [], K.UNKNOWN),
]


@pytest.mark.parametrize(
    ("status", "code", "message", "details", "kind"),
    CASES,
    ids=[f"{c[4].value}-{c[1] or c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_kind(
    status: int | None, code: str, message: str, details: list[dict[str, Any]], kind: ConflictKind
) -> None:
    assert classify(status, code, message, details).kind is kind


def test_the_same_code_means_different_things_in_different_messages() -> None:
    base = "Operation 'x' is not allowed on VM 'v' since"
    assert (
        classify(409, "OperationNotAllowed", f"{base} the VM is running. Please power off").kind
        is K.STATE_PREREQUISITE
    )
    assert (
        classify(409, "OperationNotAllowed", "results in exceeding quota limits of Core.").kind
        is K.NOT_ALLOWED
    )
    assert (
        classify(409, "OperationNotAllowed", "Another operation (Updating) is in progress").kind
        is K.OPERATION_IN_PROGRESS
    )
    assert (
        classify(429, "OperationNotAllowed", "too many requests have been received").kind
        is K.THROTTLED
    )


@pytest.mark.parametrize(
    ("message", "prerequisite"),
    [
        ("please deallocate (this is Stop operation in the Azure portal)", "deallocate"),
        ("since the VM is either deallocated or marked to be deallocated.", "start"),
        ("since the VM is running. Please power off explicitly", "powerOff"),
        ("since the VM is marked for deletion.", "wait_for_delete"),
        (
            "Resizing a disk of an Azure Virtual Machine requires the virtual machine to be deallocated.",
            "deallocate",
        ),
        (
            "requested size Standard_D3_v2 is not available in the current hardware cluster.",
            "deallocate",
        ),
    ],
)
def test_prerequisite_names_the_transition(message: str, prerequisite: str) -> None:
    c = classify(409, "OperationNotAllowed", f"Operation 'x' is not allowed on VM 'v' {message}")
    assert c.kind is K.STATE_PREREQUISITE
    assert c.prerequisite == prerequisite


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "prerequisite"),
    [
        # ARM's own words for a write that met another one on the same resource.
        (
            409,
            "Conflict",
            "The request failed due to conflict with a concurrent request. To resolve it, please "
            "refer to https://aka.ms/activitylog to get more details on the conflicting requests.",
            K.OPERATION_IN_PROGRESS,
            None,
        ),
        (
            409,
            "Conflict",
            "The request for the resource 'cfg' conflicted with an ongoing operation.",
            K.OPERATION_IN_PROGRESS,
            None,
        ),
        # AKS: OperationNotAllowed is another operation here, not a rule.
        (
            409,
            "OperationNotAllowed",
            "Operation is not allowed because there's an in progress update managed cluster "
            "operation (operation ID: e375d315) on the managed cluster started on UTC "
            "2026-05-22T07:19:23Z. Please wait for it to finish before starting a new operation.",
            K.OPERATION_IN_PROGRESS,
            None,
        ),
        # A parent is deleted only after its children: a state, with the transition named.
        (
            409,
            "CannotDeleteResource",
            "Cannot delete resource while nested resources exist. Some existing nested resource "
            "IDs include: 'Microsoft.Network/privateDnsZones/z/virtualNetworkLinks/l'.",
            K.STATE_PREREQUISITE,
            "delete_nested",
        ),
        (
            None,
            "CannotDeleteResource",
            "Can not delete resource before nested resources are deleted.",
            K.STATE_PREREQUISITE,
            "delete_nested",
        ),
        # App Service says Unauthorized for a plan or instance limit.
        (
            None,
            "Unauthorized",
            "This subscription has reached the limit of 1 Free Linux app service plan(s) it "
            "can create in this region.",
            K.NOT_ALLOWED,
            None,
        ),
        (
            None,
            "Unauthorized",
            "This region has quota of 0 instances for your subscription.",
            K.NOT_ALLOWED,
            None,
        ),
    ],
)
def test_wordings_found_in_public_reports(
    status: int | None, code: str, message: str, kind: ConflictKind, prerequisite: str | None
) -> None:
    c = classify(status, code, message)
    assert c.kind is kind
    assert c.prerequisite == prerequisite


def test_state_code_without_a_phrase_means_detach() -> None:
    c = classify(400, "InUseSubnetCannotBeDeleted", "Subnet s cannot be deleted.")
    assert c.prerequisite == "detach"


def test_locked_scopes_are_all_listed() -> None:
    msg = (
        f"The scope '{SUB}/providers/A.B/c/d' cannot perform delete operation because following "
        f"scope(s) are locked: '{SUB}', '/subscriptions/0000'. Please remove the lock and try again."
    )
    c = classify(409, "ScopeLocked", msg)
    assert c.locked_scopes == (SUB, "/subscriptions/0000")
    assert not c.kind.retryable


def test_etags_and_operation_url_are_extracted() -> None:
    stale = classify(
        412,
        "PreconditionFailed",
        "",
        [
            {
                "code": "PreconditionFailedEtagMismatch",
                "message": 'Etag provided in if-match header W/"a" does not match etag W/"b" of resource /x',
            }
        ],
    )
    assert (stale.etag_sent, stale.etag_live) == ('W/"a"', 'W/"b"')
    busy = classify(409, "AnotherOperationInProgress", f"use uri: {NSG_OP}.")
    assert busy.operation_url == NSG_OP


@pytest.mark.parametrize(
    ("headers", "message", "seconds"),
    [
        ({"Retry-After": "17"}, "", 17.0),
        ({"x-ms-retry-after-ms": "1500"}, "", 1.5),
        (None, "Please try again after '5' minutes.", 300.0),
        (None, "The call can be retried in 13 seconds.", 13.0),
        ({"Retry-After": "soon"}, "", None),
    ],
)
def test_retry_after(headers: dict[str, str] | None, message: str, seconds: float | None) -> None:
    assert (
        classify(429, "SubscriptionRequestsThrottled", message, headers=headers).retry_after
        == seconds
    )


def test_codes_lists_the_whole_tree_outermost_first() -> None:
    tree = ErrorDetail(
        "DeploymentFailed",
        "x",
        details=(
            ErrorDetail("Conflict", "y", details=(ErrorDetail("AnotherOperationInProgress", "z"),)),
        ),
    )
    c = classify_error(None, tree)
    assert c.codes == ("DeploymentFailed", "Conflict", "AnotherOperationInProgress")
    assert c.kind is K.OPERATION_IN_PROGRESS
    assert c.code == "DeploymentFailed"


def test_retryable_kinds() -> None:
    assert {k for k in K if k.retryable} == {
        K.STALE_VERSION,
        K.OPERATION_IN_PROGRESS,
        K.THROTTLED,
        K.TRANSIENT,
    }


def test_known_codes_are_lower_case_and_exclude_english_words() -> None:
    assert all(c == c.lower() for c in KNOWN_CODES)
    assert "anotheroperationinprogress" in KNOWN_CODES
    assert {"conflict", "forbidden", "notfound", "badrequest"}.isdisjoint(KNOWN_CODES)


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        # A person registers the provider once; not a policy refusal.
        (
            409,
            "MissingSubscriptionRegistration",
            "The subscription is not registered to use namespace 'Microsoft.Web'.",
            K.NOT_REGISTERED,
        ),
        (
            None,
            "",
            "The subscription is not registered to use namespace 'Microsoft.Sql'.",
            K.NOT_REGISTERED,
        ),
        # A person grants a role; not a policy refusal either.
        (
            403,
            "AuthorizationFailed",
            "The client 'x' with object id 'y' does not have authorization to perform action "
            "'Microsoft.Web/sites/write' over scope '/subscriptions/0'.",
            K.NOT_AUTHORIZED,
        ),
        # Registering a provider needs a role: the code decides, not the word "register".
        (
            403,
            "AuthorizationFailed",
            "does not have authorization to perform action 'Microsoft.Web/register/action'",
            K.NOT_AUTHORIZED,
        ),
        (
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized.",
            K.NOT_AUTHORIZED,
        ),
        (403, "", "", K.NOT_AUTHORIZED),
        # "No registered resource provider found" is a wrong api-version, not a registration.
        (
            400,
            "NoRegisteredProviderFound",
            "No registered resource provider found for location 'eastus' and API version 'x'.",
            K.INVALID,
        ),
        # A policy with a 403 is still a policy.
        (403, "RequestDisallowedByPolicy", "Resource 'r' was disallowed by policy.", K.NOT_ALLOWED),
        # Data-plane throttling under each service's own words.
        (503, "ServerBusy", "Egress is over the account limit.", K.THROTTLED),
        (None, "RateLimiting", "Client application has been throttled.", K.THROTTLED),
        (429, "", "Request rate is large. More Request Units may be needed.", K.THROTTLED),
        (
            429,
            "Throttled",
            "Request was not processed because too many requests were received.",
            K.THROTTLED,
        ),
        # Busy with another operation, in the words of SQL, Redis and Container Apps.
        (409, "", "Server 'sql-1' is busy with another operation.", K.OPERATION_IN_PROGRESS),
        (
            409,
            "Conflict",
            "The cache is busy processing a previous update request.",
            K.OPERATION_IN_PROGRESS,
        ),
        (409, "ContainerAppLockConflict", "Cannot modify container app.", K.OPERATION_IN_PROGRESS),
        # A stopped server is a state to change, not an outage.
        (
            409,
            "ServerUnavailableForOperation",
            "Operation 'x' cannot be performed as server 's' is currently in state 'Stopped'.",
            K.STATE_PREREQUISITE,
        ),
        # Stale ETags in the words of Storage, Cosmos and API Management, whatever the code.
        (400, "BadRequest", "One of the specified pre-condition is not met", K.STALE_VERSION),
        (None, "ValidationError", "Resource was modified since last retrieval.", K.STALE_VERSION),
        # Transport failures are transient.
        (
            None,
            "",
            "Post https://x: HTTP response was nil; connection may have been reset",
            K.TRANSIENT,
        ),
        (
            None,
            "",
            "read tcp 10.0.0.1:1->10.0.0.2:443: read: connection reset by peer",
            K.TRANSIENT,
        ),
    ],
)
def test_vocabulary_beyond_the_arm_core(
    status: int | None, code: str, message: str, kind: ConflictKind
) -> None:
    assert classify(status, code, message).kind is kind


def test_new_kinds_need_a_person_and_are_not_retried() -> None:
    assert not K.NOT_REGISTERED.retryable
    assert not K.NOT_AUTHORIZED.retryable


def test_confidence_follows_the_evidence() -> None:
    by_code = classify(409, "ScopeLocked", "locked")
    assert by_code.confidence == "high"
    assert by_code.evidence == ("code:ScopeLocked",)
    by_words = classify(None, "", "Too many requests. Please retry after 60 seconds.")
    assert (by_words.kind, by_words.confidence) == (K.THROTTLED, "medium")
    assert by_words.evidence == ("phrase:too many requests",)
    assert by_words.retry_after == 60
    by_status = classify(404, "", "")
    assert (by_status.kind, by_status.confidence, by_status.evidence) == (
        K.NOT_FOUND,
        "low",
        ("status:404",),
    )
    nothing = classify(None, "Weird", "never seen")
    assert (nothing.kind, nothing.confidence) == (K.UNKNOWN, "low")
