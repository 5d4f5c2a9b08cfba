"""One classifier for every ARM failure, shared by the coordinator, the emulator's tests and
``armguard explain``.

It reads the status, the code, the message and every nested detail together: ARM overloads
codes (``OperationNotAllowed`` is a power state in one message and a quota in another; a 429
``RetryableError`` can mean another operation holds the resource), so a decision on the code
alone is wrong for most real conflicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from armguard.arm.errors import ErrorDetail

__all__ = ["KNOWN_CODES", "Classification", "ConflictKind", "classify", "classify_error"]


class ConflictKind(StrEnum):
    STALE_VERSION = "stale_version"
    OPERATION_IN_PROGRESS = "operation_in_progress"
    STATE_PREREQUISITE = "state_prerequisite"
    LOCKED = "locked"
    NOT_ALLOWED = "not_allowed"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    UNKNOWN = "unknown"

    @property
    def retryable(self) -> bool:
        """Whether waiting (on an operation, a state, or a backoff) can make the write succeed."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ConflictKind.STALE_VERSION,
        ConflictKind.OPERATION_IN_PROGRESS,
        ConflictKind.THROTTLED,
        ConflictKind.TRANSIENT,
    }
)


@dataclass(frozen=True)
class Classification:
    kind: ConflictKind
    reason: str
    status: int | None = None
    code: str = ""
    message: str = ""
    operation_url: str | None = None
    """The running operation's status URL when ARM names it (AnotherOperationInProgress)."""
    retry_after: float | None = None
    locked_scopes: tuple[str, ...] = ()
    prerequisite: str | None = None
    """The transition that must happen first: ``deallocate``, ``start``, ``detach``…"""
    etag_sent: str | None = None
    etag_live: str | None = None
    codes: tuple[str, ...] = field(default=())
    """Every code in the error tree, outermost first."""


# --- signals -----------------------------------------------------------------------------

_OPERATION_URL_RE = re.compile(
    r"https?://[^\s'\"<>]+?/(?:operations|operationStatuses|operationresults|operationResults)/"
    r"[^\s'\"<>]+",
    re.IGNORECASE,
)
_ETAG_MISMATCH_RE = re.compile(
    r"if-match header (?P<sent>W/\\?\"[^\s]*?\\?\"|\\?\"[^\s]*?\\?\"|\S+) does not match etag "
    r"(?P<live>W/\\?\"[^\s]*?\\?\"|\\?\"[^\s]*?\\?\"|\S+)",
    re.IGNORECASE,
)
_LOCKED_SCOPES_RE = re.compile(r"following scope\(s\) are locked: (?P<scopes>.+?)\. Please", re.I)
_SCOPE_QUOTED_RE = re.compile(r"'([^']+)'")
_RETRY_SECONDS_RE = re.compile(
    r"(?:retried in|try again after|retry after)\s*'?(\d+)'?\s*(second|minute)", re.I
)

_STALE_CODES = frozenset(
    {
        "preconditionfailed",
        "preconditionfailedetagmismatch",
        "etagmismatch",
        "resourcemodified",
        "resourceupdateconflict",
        "conditionnotmet",
    }
)
_STALE_TEXT = (
    "does not match etag",
    "etag mismatch",
    "newer version of resource",
    "has been modified since",
    "the object has been modified",
)
_IN_PROGRESS_CODES = frozenset(
    {
        "anotheroperationinprogress",
        "operationpreempted",
        "deploymentactive",
        "deploymentactiveanduneditable",
        "conflictingconcurrentwritenotallowed",
        "retryableerrorduetoanotheroperation",
        "referencedresourcenotprovisioned",
        "resourcegroupbeingdeleted",
        "conflictingserveroperation",
        "operationinprogress",
        "concurrentrequestconflict",
        "canceledandsupersededduetoanotheroperation",
        "anotheroperationinprogressonresource",
        "requestconflict",
    }
)
_NOT_ALLOWED_CODES = frozenset(
    {
        "requestdisallowedbypolicy",
        "propertychangenotallowed",
        "quotaexceeded",
        "operationnotallowedquota",
        "skunotavailable",
        "authorizationfailed",
        "linkedauthorizationfailed",
        "forbidden",
        "storageaccountalreadytaken",
        "storageaccountalreadyexists",
        "storageaccountinanotherresourcegroup",
        "missingsubscriptionregistration",
        "deploymentquotaexceeded",
        "allocationfailed",
        "zonalallocationfailed",
        "overconstrainedallocationrequest",
        "invalidresourcelocation",
        "locationnotavailableforresourcetype",
        "subscriptionnotregistered",
        "disallowedoperation",
        "featurenotenabled",
    }
)
_NOT_FOUND_CODES = frozenset(
    {
        "resourcenotfound",
        "resourcegroupnotfound",
        "notfound",
        "parentresourcenotfound",
        "patchresourcenotfound",
        "subscriptionnotfound",
        "deploymentnotfound",
        "invalidsubscriptionid",
    }
)
_INVALID_CODES = frozenset(
    {
        "invalidrequestcontent",
        "invalidrequestformat",
        "invalidtemplate",
        "invalidtemplatedeployment",
        "badrequest",
        "missingapiversionparameter",
        "invalidapiversionparameter",
        "noregisteredproviderfound",
        "invalidparameter",
        "invalidresourceid",
        "linkedinvalidpropertyid",
        "invalidresourcename",
        "invalidresourcetype",
        "invalidjson",
        "unsupportedmediatype",
        "requestentitytoolarge",
        "invalidresourcereference",
        "missingrequiredparameter",
        "invaliddeployment",
        "invalidrequestparameter",
        "invalidparametervalue",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "subscriptionrequeststhrottled",
        "resourcerequeststhrottled",
        "toomanyrequestsreceived",
        "toomanyrequests",
        "tenantrequeststhrottled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "internalservererror",
        "internalerror",
        "serviceunavailable",
        "gatewaytimeout",
        "badgateway",
        "requesttimeout",
        "operationtimedout",
        "internaloperationerror",
        "networkingpinternaloperationerror",
        "retryableerror",
        "gatewayerror",
        "internalexecutionerror",
        "serverbusy",
    }
)
_THROTTLE_RE = re.compile(
    r"number of (?:\w+ )?requests for .{0,300}?exceeded"
    r"|too many requests|requests? (?:was|were|has been|have been) throttled|rate limit",
)
_QUOTA_STRONG_TEXT = (
    "exceeding approved",
    "exceeding quota",
    "quota limits",
    "quota exceeded",
    "exceeds quota",
    "results in exceeding",
    "disallowed by policy",
    "azureskunotavailable",
    "is currently not available in location",
    # App Service answers plan and instance limits with the code Unauthorized: "This
    # subscription has reached the limit of 1 Free Linux app service plan(s)", "This region
    # has quota of 0 instances for your subscription" (vscode-azureappservice#1914,
    # Azure/logicapps#590).
    "has reached the limit of",
    "has quota of",
)
_NOT_FOUND_TEXT = ("could not be found", "was not found", "armresourcenotfoundfix")
_STATE_RE = re.compile(r"is not allowed on (?:vm|virtual machine) '[^']*' since the vm is")
# Wrappers whose meaning is in their details.
_WRAPPER_CODES = frozenset(
    {
        "deploymentfailed",
        "resourcedeploymentfailure",
        "resourceoperationfailure",
        "conflict",
        "",
        "multipleerrorsoccurred",
        "badrequest",
        "internalservererror",
    }
)

_IN_PROGRESS_TEXT = (
    "another operation on this or dependent resource is in progress",
    "another operation is in progress",
    "since another operation is in progress",
    "is currently being updated",
    "an ongoing operation is changing power state",
    "is updating resource",
    "previous deployment from",
    "is still active",
    "conflicting concurrent write",
    "has been preempted by a more recent operation",
    "preempted by a more recent operation",
    "operation is in progress",
    "is in progress on the resource",
    "currently in a transitioning state",
    "is being deleted",
    "provisioning state is not terminal",
    "in non-terminal provisioning state",
    "wait for concurrent deployment",
    "superseded by operation",
    "conflicting changes were detected",
    "multiple requests trying to update",
    # "The request failed due to conflict with a concurrent request. To resolve it, please
    # refer to https://aka.ms/activitylog …" (ARM, microsoft/onefuzz#2124).
    "conflict with a concurrent request",
    # "The request for the resource '…' conflicted with an ongoing operation." (App
    # Configuration, terraform-provider-azurerm#26224).
    "conflicted with an ongoing operation",
    # AKS: "Operation is not allowed because there's an in progress update managed cluster
    # operation (operation ID: …) … Please wait for it to finish before starting a new
    # operation." (Azure/azure-cli-extensions#9855).
    "wait for it to finish before starting a new operation",
)
# "Another operation (nodepool1 - Updating) is in progress", "Another agentpool operation …",
# "Another operation is pending for requested object": AKS, DNS and App Service variants.
_IN_PROGRESS_RE = re.compile(
    r"another (?:[\w-]+ )?operation (?:\([^)]{0,80}\) )?is (?:already )?(?:in progress|pending|running)"
    r"|because another operation is in progress"
    r"|there'?s an in[ -]progress [\w ]{0,60}operation"
    r"|is not in succeeded state\. resource is in (?:updating|creating|deleting) state",
)
_PREREQUISITES: tuple[tuple[str, str], ...] = (
    ("please deallocate", "deallocate"),
    ("deallocate (this is stop operation", "deallocate"),
    ("since the vm is not deallocated", "deallocate"),
    ("when the vm is deallocated", "deallocate"),
    ("when vm is allocated", "deallocate"),
    ("only when creating a vm or when the vm is deallocated", "deallocate"),
    ("requires the virtual machine to be deallocated", "deallocate"),
    ("in the current hardware cluster", "deallocate"),
    ("not available in the cluster where the vm is currently allocated", "deallocate"),
    ("please power off", "powerOff"),
    ("since the vm is running", "powerOff"),
    ("either deallocated or marked to be deallocated", "start"),
    ("requires the vm to be running", "start"),
    ("when the vm is not running", "start"),
    ("marked for deletion", "wait_for_delete"),
    # CannotDeleteResource: "Cannot delete resource while nested resources exist" / "Can not
    # delete resource before nested resources are deleted" (terraform-provider-azapi#894,
    # Azure/ResourceModules#435).
    ("while nested resources exist", "delete_nested"),
    ("before nested resources are deleted", "delete_nested"),
    ("in use by", "detach"),
    ("is in use", "detach"),
    ("cannot be deleted because it is in use", "detach"),
    ("inusesubnetcannotbedeleted", "detach"),
    ("must be detached", "detach"),
    ("is attached to", "detach"),
    ("disk is attached", "detach"),
)
_STATE_CODES = frozenset(
    {
        "inusesubnetcannotbedeleted",
        "inuseroutetablecannotbedeleted",
        "inusenetworksecuritygroupcannotbedeleted",
        "subnetinuse",
        "nicinuse",
        "inusenetworkinterfacecannotbedeleted",
        "publicipaddressinuse",
        "publicipaddresscannotbedeleted",
        "operationnotallowedonvmindeallocatedstate",
        "vmnotrunning",
        "vmredeploymentfailed",
        "diskinuse",
        "attachdiskwhilebeingdetached",
        "conflictingoperationonvm",
        "cannotdeleteresource",
    }
)


KNOWN_CODES: frozenset[str] = (
    _STALE_CODES
    | _IN_PROGRESS_CODES
    | _NOT_ALLOWED_CODES
    | _NOT_FOUND_CODES
    | _INVALID_CODES
    | _THROTTLE_CODES
    | _TRANSIENT_CODES
    | _STATE_CODES
    | {"scopelocked", "operationnotallowed", "deploymentfailed", "resourcedeploymentfailure"}
) - {"notfound", "forbidden", "badrequest", "conflict", "internalerror"}
"""Lower-cased codes specific enough to identify an ARM error inside free text."""


# --- the classifier ----------------------------------------------------------------------


def classify(
    status: int | None,
    code: str | None = None,
    message: str | None = None,
    details: Sequence[ErrorDetail | Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Classification:
    """Classify one ARM failure. Every argument may be missing; the whole text is used."""
    detail_objs = tuple(
        d if isinstance(d, ErrorDetail) else ErrorDetail.from_json(d) for d in details
    )
    root = ErrorDetail(code or "", message or "", details=detail_objs)
    return classify_error(status, root, headers)


def classify_error(
    status: int | None, error: ErrorDetail, headers: Mapping[str, str] | None = None
) -> Classification:
    nodes = error.walk()
    codes = tuple(n.code for n in nodes if n.code)
    lowered = [c.lower() for c in codes]
    text = " ".join(f"{n.code} {n.message}" for n in nodes)
    low = text.lower()
    retry_after = _retry_after(headers, low)
    common: dict[str, Any] = {
        "status": status,
        "code": error.code or (codes[0] if codes else ""),
        "message": error.message or next((n.message for n in nodes if n.message), ""),
        "retry_after": retry_after,
        "codes": codes,
        "operation_url": _operation_url(text),
    }
    sent, live = _etags(text)

    def result(kind: ConflictKind, reason: str, **extra: Any) -> Classification:
        return Classification(kind=kind, reason=reason, **{**common, **extra})

    # Locks first: a ScopeLocked 409 must never be mistaken for a retryable conflict.
    if "scopelocked" in lowered or "following scope(s) are locked" in low:
        return result(
            ConflictKind.LOCKED,
            "A management lock blocks this operation; only a person should remove it.",
            locked_scopes=_locked_scopes(text),
        )
    if (
        status == 412
        or any(c in _STALE_CODES for c in lowered)
        or sent is not None
        or any(t in low for t in _STALE_TEXT)
    ):
        return result(
            ConflictKind.STALE_VERSION,
            "The ETag sent no longer matches the live resource: another writer changed it.",
            etag_sent=sent,
            etag_live=live,
        )
    in_progress_code = any(
        c in _IN_PROGRESS_CODES or (c.endswith("operationinprogress") and c != "") for c in lowered
    )
    if (
        in_progress_code
        or any(t in low for t in _IN_PROGRESS_TEXT)
        or _IN_PROGRESS_RE.search(low) is not None
    ):
        if "marked for deletion" in low:
            return result(
                ConflictKind.STATE_PREREQUISITE,
                "The resource is being deleted; only the delete can proceed.",
                prerequisite="wait_for_delete",
            )
        return result(
            ConflictKind.OPERATION_IN_PROGRESS,
            "Another operation holds this resource or one it depends on.",
        )
    # Throttling before OperationNotAllowed: compute answers a burst with 429
    # OperationNotAllowed + TooManyRequests, which is a rate, not a rule.
    throttle_code = any(c in _THROTTLE_CODES for c in lowered)
    gateway_429 = status == 429 and any(
        c in _TRANSIENT_CODES and c != "retryableerror" for c in lowered
    )
    if throttle_code or _THROTTLE_RE.search(low) is not None or (status == 429 and not gateway_429):
        return result(
            ConflictKind.THROTTLED,
            "ARM throttled the caller; back off as Retry-After says, inside a retry budget.",
        )
    state_code = any(c in _STATE_CODES for c in lowered)
    prerequisite = next((p for t, p in _PREREQUISITES if t in low), None)
    state_text = _STATE_RE.search(low) is not None
    if (
        "operationnotallowed" in lowered
        or state_code
        or state_text
        or (status == 409 and prerequisite)
    ):
        if prerequisite is not None or state_code or state_text:
            if state_code and prerequisite is None:
                prerequisite = "delete_nested" if "cannotdeleteresource" in lowered else "detach"
            return result(
                ConflictKind.STATE_PREREQUISITE,
                "The resource is not in the state this operation requires.",
                prerequisite=prerequisite,
            )
        return result(
            ConflictKind.NOT_ALLOWED,
            "A quota, SKU or policy rule forbids this operation in any state.",
        )
    if (
        any(c in _NOT_ALLOWED_CODES for c in lowered)
        or status == 403
        or any(t in low for t in _QUOTA_STRONG_TEXT)
    ):
        return result(ConflictKind.NOT_ALLOWED, "A policy, quota, SKU or permission forbids it.")
    if any(c in _NOT_FOUND_CODES for c in lowered) or status == 404:
        return result(ConflictKind.NOT_FOUND, "The resource or its parent does not exist.")
    if (
        any(c in _TRANSIENT_CODES for c in lowered)
        or (status is not None and status >= 500)
        or gateway_429
    ):
        return result(
            ConflictKind.TRANSIENT, "A transient service failure; back off with jitter and retry."
        )
    if any(c in _INVALID_CODES for c in lowered) or status in (400, 413, 415, 422):
        return result(ConflictKind.INVALID, "The request itself is invalid; fix it, do not retry.")
    if any(t in low for t in _NOT_FOUND_TEXT):
        return result(ConflictKind.NOT_FOUND, "The resource or its parent does not exist.")
    if _looks_transient_text(low):
        return result(
            ConflictKind.TRANSIENT, "A transient service failure; back off with jitter and retry."
        )
    non_wrapper = [c for c in lowered if c not in _WRAPPER_CODES]
    reason = "No known conflict signal in this error."
    if non_wrapper:
        reason = f"Unrecognised error code '{codes[lowered.index(non_wrapper[0])]}'."
    return result(ConflictKind.UNKNOWN, reason)


def _looks_transient_text(low: str) -> bool:
    return any(
        t in low
        for t in (
            "timed out",
            "timeout",
            "temporarily unavailable",
            "connection reset",
            "please retry",
            "try again later",
        )
    )


def _operation_url(text: str) -> str | None:
    m = _OPERATION_URL_RE.search(text)
    if not m:
        return None
    return m.group(0).rstrip(".,;)")


def _etags(text: str) -> tuple[str | None, str | None]:
    m = _ETAG_MISMATCH_RE.search(text)
    if not m:
        return None, None
    return _clean_etag(m.group("sent")), _clean_etag(m.group("live"))


def _clean_etag(value: str) -> str:
    return value.replace('\\"', '"').rstrip(".,")


def _locked_scopes(text: str) -> tuple[str, ...]:
    m = _LOCKED_SCOPES_RE.search(text)
    if not m:
        return ()
    return tuple(_SCOPE_QUOTED_RE.findall(m.group("scopes")))


def _retry_after(headers: Mapping[str, str] | None, low: str) -> float | None:
    if headers:
        for name, value in headers.items():
            lname = name.lower()
            try:
                if lname == "retry-after":
                    return max(0.0, float(value))
                if lname in ("retry-after-ms", "x-ms-retry-after-ms"):
                    return max(0.0, float(value) / 1000.0)
            except ValueError:
                continue
    m = _RETRY_SECONDS_RE.search(low)
    if m:
        n = float(m.group(1))
        return n * 60 if m.group(2).lower().startswith("minute") else n
    return None
