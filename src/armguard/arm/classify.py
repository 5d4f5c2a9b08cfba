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

__all__ = [
    "KNOWN_CODES",
    "Classification",
    "Confidence",
    "ConflictKind",
    "classify",
    "classify_error",
]


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
    NOT_REGISTERED = "not_registered"
    """The subscription is not registered for the resource provider (or feature) it uses: a
    person registers it once, then the same request succeeds."""
    NOT_AUTHORIZED = "not_authorized"
    """The caller lacks the role or data permission the action needs: a person grants it (and
    the caller refreshes its token), then the same request succeeds."""
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


class Confidence(StrEnum):
    """How sure a classification is, by the kind of evidence that decided it."""

    HIGH = "high"
    """A code specific to the kind, or a phrase only that failure prints."""
    MEDIUM = "medium"
    """A phrase that usually means the kind, or a generic code read with its message."""
    LOW = "low"
    """The HTTP status alone, generic words, or nothing at all (unknown)."""


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
    confidence: Confidence = Confidence.LOW
    evidence: tuple[str, ...] = ()
    """The signals that decided the kind: ``code:X``, ``phrase:…`` or ``status:N``."""


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
        "targetconditionnotmet",
        "ifmatchpreconditionfailed",
        "appendpositionconditionnotmet",
    }
)
_STALE_TEXT = (
    "does not match etag",
    "etag mismatch",
    "newer version of resource",
    "has been modified since",
    "the object has been modified",
    # Storage: "The condition specified using HTTP conditional header(s) is not met."
    "conditional header(s) is not met",
    "conditional headers is not met",
    # Cosmos: "One of the specified pre-condition is not met", "one of the specified
    # precondition is not met".
    "pre-condition is not met",
    "precondition is not met",
    "condition specified was not met",
    # API Management: "Resource was modified since last retrieval."
    "modified since last retrieval",
    "etag does not represent the latest state",
    "in the if-none-match header was satisfied",
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
        "pessimisticconcurrencyconflict",
        "conflictingdatabaseoperation",
        "servergroupbusy",
        "serverisbusy",
        # ResourceGroupDeletionBlocked wraps it: a resource in the group still runs a task.
        "taskisrunning",
    }
)
_REGISTRATION_CODES = frozenset(
    {
        "missingsubscriptionregistration",
        "subscriptionnotregistered",
        "missingregistrationforlocation",
        "missingregistrationforresourceprovider",
        "featurenotregistered",
        "subscriptionnotregisteredforfeature",
    }
)
_REGISTRATION_TEXT = (
    "is not registered to use namespace",
    "must be registered to use namespace",
    "is not registered for the resource type",
    "subscription is not registered for feature",
    "aka.ms/rps-not-found",
)
_AUTHORIZATION_CODES = frozenset(
    {
        "authorizationfailed",
        "linkedauthorizationfailed",
        "linkedaccesscheckfailed",
        "authorizationpermissionmismatch",
        "authorizationfailure",
        "authorizationresourcetypemismatch",
        "authorizationsourceipmismatch",
        "authorizationprotocolmismatch",
        "insufficientaccountpermissions",
        "invalidauthenticationtoken",
        "invalidauthenticationtokentenant",
        "invalidauthenticationtokenaudience",
        "authenticationfailed",
        "expiredauthenticationtoken",
        "forbiddenbyrbac",
        "accessdenied",
    }
)
_AUTHORIZATION_RE = re.compile(
    r"does not have (?:the )?(?:authorization|permission) to perform"
    r"|not authorized to perform this operation"
    r"|is not authorized to access linked subscription"
    r"|does not have (?:\w+ )+permission on key vault"
    r"|the client '[^']*' with object id '[^']*' does not have"
)
_NOT_ALLOWED_CODES = frozenset(
    {
        "requestdisallowedbypolicy",
        "propertychangenotallowed",
        "quotaexceeded",
        "operationnotallowedquota",
        "skunotavailable",
        "storageaccountalreadytaken",
        "storageaccountalreadyexists",
        "storageaccountinanotherresourcegroup",
        "deploymentquotaexceeded",
        "allocationfailed",
        "zonalallocationfailed",
        "overconstrainedallocationrequest",
        "invalidresourcelocation",
        "locationnotavailableforresourcetype",
        "disallowedoperation",
        "featurenotenabled",
        "mergenamespacefailedwithimmutablepropertyupdate",
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
        "secretnotfound",
        "keynotfound",
        "certificatenotfound",
        "vaultnotfound",
        "containernotfound",
        "blobnotfound",
        "sharenotfound",
        "queuenotfound",
        "tablenotfound",
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
        "unsupportedrequestcontent",
        "validationerror",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "subscriptionrequeststhrottled",
        "resourcerequeststhrottled",
        "toomanyrequestsreceived",
        "toomanyrequests",
        "tenantrequeststhrottled",
        # Resource Graph, Key Vault, Cosmos and Storage throttle the data plane under their own
        # codes; Storage's ServerBusy comes with a 503 but means "over the account limit".
        "ratelimiting",
        "throttled",
        "requestratetoolarge",
        "serverbusy",
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
        "internalretriableerror",
    }
)
_THROTTLE_RE = re.compile(
    r"number of (?:\w+ )?requests for .{0,300}?exceeded"
    r"|too many requests|requests? (?:was|were|has been|have been) throttled|rate limit"
    r"|request rate is large|is over the account limit|\bthrottl(?:ed|ing)\b"
    r"|too many operations in progress",
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
    # Immutability in words, whatever the code: "Changing property 'x' is not allowed",
    # "ZoneRedundant is an immutable property", "… and vice-versa is not allowed".
    "is an immutable property",
    "cannot be changed after",
    "cannot be changed once",
    "is not available in the current region",
    "size is not available",
    "vice-versa is not allowed",
    "resource name isn't available",
    "name is already taken",
)
_NOT_FOUND_TEXT = (
    "could not be found",
    "was not found",
    "armresourcenotfoundfix",
    "does not exist",
    "parent resource",
)
_INVALID_TEXT = (
    "is not valid according to the validation procedure",
    "deployment validation failed",
    "template validation failed",
    "request content is not well formed",
    "has an invalid value",
)
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
        "resourcegroupdeletionblocked",
        "invalidtemplatedeployment",
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
    "not in terminal state",
    "in terminal provisioningstate and try again",
    "requires exclusive access",
    "busy processing a previous update",
    "busy with another operation",
)
# "Another operation (nodepool1 - Updating) is in progress", "Another agentpool operation …",
# "Another operation is pending for requested object": AKS, DNS and App Service variants;
# "another modification is in progress" (Container Apps), "an import or export operation in
# progress" (SQL), "conflicts with the pending '…' operation" (Kudu).
_IN_PROGRESS_RE = re.compile(
    r"another (?:[\w-]+ )?operation (?:\([^)]{0,80}\) )?is (?:already )?(?:in progress|pending|running)"
    r"|because another (?:operation|modification|update) is in progress"
    r"|there'?s an in[ -]progress [\w ]{0,60}operation"
    r"|is not in succeeded state\. resource is in (?:updating|creating|deleting) state"
    r"|\boperations? in progress\b"
    r"|conflicts with the pending '[^']{0,80}' operation"
    r"|current (?:server )?state\s*[=:]\s*'?(?:updating|creating|deleting|starting|stopping|scaling|upgrading)",
)
_PREREQUISITES: tuple[tuple[str, str], ...] = (
    ("please deallocate", "deallocate"),
    ("deallocate (this is stop operation", "deallocate"),
    ("since the vm is not deallocated", "deallocate"),
    ("when the vm is deallocated", "deallocate"),
    ("when vm is allocated", "deallocate"),
    ("only when creating a vm or when the vm is deallocated", "deallocate"),
    ("requires the virtual machine to be deallocated", "deallocate"),
    ("virtual machine(s) are deallocated", "deallocate"),
    ("while it is attached to running", "deallocate"),
    ("in the current hardware cluster", "deallocate"),
    ("not available in the cluster where the vm is currently allocated", "deallocate"),
    ("please power off", "powerOff"),
    ("since the vm is running", "powerOff"),
    ("either deallocated or marked to be deallocated", "start"),
    ("requires the vm to be running", "start"),
    ("when the vm is not running", "start"),
    ("is currently in state 'stopped'", "start"),
    ("server is stopped", "start"),
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
    ("still allocated to resource", "detach"),
    ("already allocated to resource", "detach"),
    ("is used by existing vm", "detach"),
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
        "serverunavailableforoperation",
    }
)
_TRANSIENT_TEXT = (
    "timed out",
    "timeout",
    "temporarily unavailable",
    "connection reset",
    "connection may have been reset",
    "http response was nil",
    "context deadline exceeded",
    "connection refused",
    "please retry",
    "try again later",
    "internal error",
    "internal server error",
    "did not receive a response",
    "service is unavailable",
    "server unavailable",
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
    | _REGISTRATION_CODES
    | _AUTHORIZATION_CODES
    | {"scopelocked", "operationnotallowed", "deploymentfailed", "resourcedeploymentfailure"}
) - {
    "notfound",
    "forbidden",
    "badrequest",
    "conflict",
    "internalerror",
    "throttled",
    "validationerror",
    "accessdenied",
}
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


class _Signals:
    """What the error says, looked up once: each lookup returns the code or words that
    matched, so the classification can say what decided it."""

    def __init__(self, codes: tuple[str, ...], low: str) -> None:
        self.codes = codes
        self.lowered = [c.lower() for c in codes]
        self.low = low

    def code(self, known: frozenset[str]) -> str | None:
        return next(
            (c for c, lc in zip(self.codes, self.lowered, strict=True) if lc in known), None
        )

    def code_where(self, test: Any) -> str | None:
        return next((c for c, lc in zip(self.codes, self.lowered, strict=True) if test(lc)), None)

    def phrase(self, phrases: Sequence[str]) -> str | None:
        return next((t for t in phrases if t in self.low), None)

    def pattern(self, rx: re.Pattern[str]) -> str | None:
        m = rx.search(self.low)
        return m.group(0) if m else None


def classify_error(
    status: int | None, error: ErrorDetail, headers: Mapping[str, str] | None = None
) -> Classification:
    nodes = error.walk()
    codes = tuple(n.code for n in nodes if n.code)
    text = " ".join(f"{n.code} {n.message}" for n in nodes)
    low = text.lower()
    sig = _Signals(codes, low)
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

    def result(
        kind: ConflictKind, reason: str, evidence: Sequence[str | None], **extra: Any
    ) -> Classification:
        found = tuple(e for e in evidence if e)
        return Classification(
            kind=kind,
            reason=reason,
            confidence=_confidence(found),
            evidence=found,
            **{**common, **extra},
        )

    def c(code: str | None) -> str | None:
        return f"code:{code}" if code else None

    def w(words: str | None) -> str | None:
        return f"phrase:{words}" if words else None

    st = f"status:{status}" if status is not None else None

    # Locks first: a ScopeLocked 409 must never be mistaken for a retryable conflict.
    locked_code = sig.code(frozenset({"scopelocked"}))
    locked_text = sig.phrase(
        ("following scope(s) are locked", "because it or its parent is locked")
    )
    if locked_code or locked_text:
        return result(
            ConflictKind.LOCKED,
            "A management lock blocks this operation; only a person should remove it.",
            [c(locked_code), w(locked_text)],
            locked_scopes=_locked_scopes(text),
        )
    stale_code = sig.code(_STALE_CODES) or sig.code_where(
        lambda x: x.endswith("preconditionfailed")
    )
    stale_text = sig.phrase(_STALE_TEXT) or ("does not match etag" if sent is not None else None)
    if status == 412 or stale_code or stale_text:
        return result(
            ConflictKind.STALE_VERSION,
            "The ETag sent no longer matches the live resource: another writer changed it.",
            [c(stale_code), w(stale_text), st if status == 412 else None],
            etag_sent=sent,
            etag_live=live,
        )
    in_progress_code = sig.code(_IN_PROGRESS_CODES) or sig.code_where(
        lambda x: x.endswith("operationinprogress") or x.endswith("lockconflict")
    )
    in_progress_text = sig.phrase(_IN_PROGRESS_TEXT) or sig.pattern(_IN_PROGRESS_RE)
    if in_progress_code or in_progress_text:
        if "marked for deletion" in low:
            return result(
                ConflictKind.STATE_PREREQUISITE,
                "The resource is being deleted; only the delete can proceed.",
                [w("marked for deletion")],
                prerequisite="wait_for_delete",
            )
        return result(
            ConflictKind.OPERATION_IN_PROGRESS,
            "Another operation holds this resource or one it depends on.",
            [c(in_progress_code), w(in_progress_text)],
        )
    # Throttling before OperationNotAllowed: compute answers a burst with 429
    # OperationNotAllowed + TooManyRequests, which is a rate, not a rule.
    throttle_code = sig.code(_THROTTLE_CODES)
    throttle_text = sig.pattern(_THROTTLE_RE)
    gateway_429 = status == 429 and sig.code(_TRANSIENT_CODES - {"retryableerror"}) is not None
    if throttle_code or throttle_text or (status == 429 and not gateway_429):
        return result(
            ConflictKind.THROTTLED,
            "The caller was throttled; back off as Retry-After says, inside a retry budget.",
            [c(throttle_code), w(throttle_text), st if status == 429 else None],
        )
    state_code = sig.code(_STATE_CODES)
    prerequisite_text = next(((t, p) for t, p in _PREREQUISITES if t in low), None)
    prerequisite = prerequisite_text[1] if prerequisite_text else None
    state_text = sig.pattern(_STATE_RE)
    operation_not_allowed = sig.code(frozenset({"operationnotallowed"}))
    # A state phrase alone decides when nothing more specific was said: no status, a 409, or
    # no code of its own. A 400 with its own code keeps that code's meaning, as it always has
    # for the coordinator.
    specific = [x for x in codes if x.lower() not in _WRAPPER_CODES]
    phrase_decides = prerequisite_text is not None and (status in (None, 409) or not specific)
    if state_code or state_text or phrase_decides:
        if state_code and prerequisite is None:
            prerequisite = (
                "delete_nested" if state_code.lower() == "cannotdeleteresource" else "detach"
            )
        return result(
            ConflictKind.STATE_PREREQUISITE,
            "The resource is not in the state this operation requires.",
            [c(state_code), w(state_text), w(prerequisite_text[0] if prerequisite_text else None)],
            prerequisite=prerequisite,
        )
    quota_text = sig.phrase(_QUOTA_STRONG_TEXT)
    # Registration and authorization before quotas and policies: both need a person to act
    # once (register the provider, grant the role), after which the same request succeeds.
    authz_code = sig.code(_AUTHORIZATION_CODES)
    authz_text = sig.pattern(_AUTHORIZATION_RE)
    if (authz_code or authz_text) and not quota_text:
        return result(
            ConflictKind.NOT_AUTHORIZED,
            "The caller lacks the role or permission this action needs; a person must grant it.",
            [c(authz_code), w(authz_text)],
        )
    registration_code = sig.code(_REGISTRATION_CODES)
    registration_text = sig.phrase(_REGISTRATION_TEXT)
    if registration_code or registration_text:
        return result(
            ConflictKind.NOT_REGISTERED,
            "The subscription is not registered for this resource provider; register it once.",
            [c(registration_code), w(registration_text)],
        )
    not_allowed_code = sig.code(_NOT_ALLOWED_CODES)
    if operation_not_allowed or not_allowed_code or quota_text:
        return result(
            ConflictKind.NOT_ALLOWED,
            "A quota, SKU or policy rule forbids this operation in any state.",
            [c(not_allowed_code or operation_not_allowed), w(quota_text)],
        )
    if status in (401, 403) or sig.code(frozenset({"forbidden", "unauthorized"})):
        return result(
            ConflictKind.NOT_AUTHORIZED,
            "The caller is not allowed to perform this action; a person must grant access.",
            [c(sig.code(frozenset({"forbidden", "unauthorized"}))), st],
        )
    not_found_code = sig.code(_NOT_FOUND_CODES)
    if not_found_code or status == 404:
        return result(
            ConflictKind.NOT_FOUND,
            "The resource or its parent does not exist.",
            [c(not_found_code), st if status == 404 else None],
        )
    transient_code = sig.code(_TRANSIENT_CODES)
    if transient_code or (status is not None and status >= 500) or gateway_429:
        return result(
            ConflictKind.TRANSIENT,
            "A transient service failure; back off with jitter and retry.",
            [c(transient_code), st],
        )
    invalid_code = sig.code(_INVALID_CODES)
    invalid_text = sig.phrase(_INVALID_TEXT)
    if invalid_code or invalid_text or status in (400, 413, 415, 422):
        return result(
            ConflictKind.INVALID,
            "The request itself is invalid; fix it, do not retry.",
            [c(invalid_code), w(invalid_text), st if invalid_code is None else None],
        )
    not_found_text = sig.phrase(_NOT_FOUND_TEXT)
    if not_found_text:
        return result(
            ConflictKind.NOT_FOUND,
            "The resource or its parent does not exist.",
            [w(not_found_text)],
        )
    transient_text = sig.phrase(_TRANSIENT_TEXT)
    if transient_text:
        return result(
            ConflictKind.TRANSIENT,
            "A transient service failure; back off with jitter and retry.",
            [w(transient_text)],
        )
    non_wrapper = [x for x in codes if x.lower() not in _WRAPPER_CODES]
    reason = "No known conflict signal in this error."
    if non_wrapper:
        reason = f"Unrecognised error code '{non_wrapper[0]}'."
    return result(ConflictKind.UNKNOWN, reason, [st])


# Phrases that only the failure of their kind prints: as strong as a code.
_STRONG_PHRASES = frozenset(
    {
        "following scope(s) are locked",
        "because it or its parent is locked",
        "is not registered to use namespace",
        "must be registered to use namespace",
        "another operation on this or dependent resource is in progress",
        "does not match etag",
        "conditional header(s) is not met",
    }
)


def _confidence(evidence: tuple[str, ...]) -> Confidence:
    """High for a code of the kind (or a phrase only that failure prints), medium for words
    that usually mean it, low for a bare status or nothing."""
    kinds = {e.split(":", 1)[0] for e in evidence}
    if "code" in kinds or any(e.split(":", 1)[1] in _STRONG_PHRASES for e in evidence):
        return Confidence.HIGH
    if "phrase" in kinds:
        return Confidence.MEDIUM
    return Confidence.LOW


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
