"""Facts from a pasted error + its classification → what it means and what to do.

Each conflict kind has one safe recovery and a known wrong fix (the seeds' "how to fix" and
"wrong fix to avoid" lines). The text is filled with the facts found (resource, operation URL,
ETags, locked scope, prerequisite, VM size) so a person can act on it without re-reading the
error, and the diagnostic commands come with the IDs already in them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from armguard.arm.classify import Classification, Confidence, ConflictKind, classify_error
from armguard.arm.errors import ErrorDetail
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.diagnose.parse import ParsedError, body_facts, foreign_source, parse_error_text

__all__ = [
    "SEVERITY",
    "ExplainedError",
    "Explanation",
    "NextCommand",
    "NoArmError",
    "explain",
    "explain_text",
]


class NoArmError(ValueError):
    """The text carries no error at all: no code, no failure status, no exception, no error
    word. Any text with an error in it is explained instead, ``unknown`` when nothing matches.
    """


SEVERITY: tuple[ConflictKind, ...] = (
    ConflictKind.LOCKED,
    ConflictKind.NOT_AUTHORIZED,
    ConflictKind.NOT_REGISTERED,
    ConflictKind.NOT_ALLOWED,
    ConflictKind.INVALID,
    ConflictKind.NOT_FOUND,
    ConflictKind.STATE_PREREQUISITE,
    ConflictKind.STALE_VERSION,
    ConflictKind.OPERATION_IN_PROGRESS,
    ConflictKind.THROTTLED,
    ConflictKind.TRANSIENT,
    ConflictKind.UNKNOWN,
)
"""Of several errors in one paste, the one explained first: a kind that needs a person or a
changed request (waiting fixes nothing) before a kind that waiting fixes; unknown last."""


@dataclass(frozen=True)
class NextCommand:
    tool: str
    """``az`` or ``armguard``."""
    command: str
    purpose: str


@dataclass(frozen=True)
class Explanation:
    facts: ParsedError
    classification: Classification
    meaning: str
    recovery: tuple[str, ...]
    wrong_fix: tuple[str, ...]
    next_commands: tuple[NextCommand, ...]
    errors: tuple[ExplainedError, ...] = ()
    """When the text holds several distinct errors (an Activity Log export), each of them,
    most severe first; this explanation is of the first. Empty for a single error."""
    foreign_source: str | None = None
    """``a Kubernetes API``, ``a Google Cloud`` or ``an AWS`` when the paste is that API's
    error and shows nothing of ARM's: it is still classified, with low confidence."""

    @property
    def confidence(self) -> Confidence:
        # ARM's vocabulary read over another API's error is a guess, however strong the words.
        return Confidence.LOW if self.foreign_source else self.classification.confidence

    @property
    def kind(self) -> ConflictKind:
        return self.classification.kind

    def brief(self, count: int = 1) -> dict[str, Any]:
        """This error alone, as one entry of ``errors`` in the JSON output."""
        facts = self.facts
        return {
            "kind": self.kind.value,
            "retryable": self.kind.retryable,
            "confidence": self.confidence.value,
            "decidedBy": list(self.classification.evidence),
            "count": count,
            "status": facts.status,
            "code": facts.code,
            "message": facts.message,
            "codes": list(self.classification.codes),
            "resourceIds": [str(r) for r in facts.resource_ids],
            "operationUrl": self.operation_url,
            "meaning": self.meaning,
            "recovery": list(self.recovery),
            "wrongFix": list(self.wrong_fix),
        }

    @property
    def retry_after(self) -> float | None:
        return (
            self.facts.retry_after
            if self.facts.retry_after is not None
            else self.classification.retry_after
        )

    @property
    def operation_url(self) -> str | None:
        return self.facts.operation_url or self.classification.operation_url

    @property
    def etags(self) -> tuple[str | None, str | None]:
        return (
            self.facts.etag_submitted or self.classification.etag_sent,
            self.facts.etag_live or self.classification.etag_live,
        )

    def to_json(self) -> dict[str, Any]:
        """The stable shape ``armguard explain --output json`` prints."""
        sent, live = self.etags
        facts = self.facts
        return {
            "kind": self.kind.value,
            "retryable": self.kind.retryable,
            "confidence": self.confidence.value,
            "decidedBy": list(self.classification.evidence),
            "foreignSource": self.foreign_source,
            "reason": self.classification.reason,
            "status": facts.status,
            "code": facts.code,
            "message": facts.message,
            "codes": list(self.classification.codes),
            "details": [d.to_json() for d in facts.error.details],
            "resourceIds": [str(r) for r in facts.resource_ids],
            "operationUrl": self.operation_url,
            "etags": {"submitted": sent, "live": live},
            "retryAfter": self.retry_after,
            "lockedScopes": list(self.classification.locked_scopes),
            "prerequisite": self.classification.prerequisite,
            "deploymentName": facts.deployment_name,
            "vmSize": facts.vm_size,
            "correlationIds": list(facts.correlation_ids),
            "requestIds": list(facts.request_ids),
            "format": facts.format,
            "meaning": self.meaning,
            "recovery": list(self.recovery),
            "wrongFix": list(self.wrong_fix),
            "nextCommands": [
                {"tool": c.tool, "command": c.command, "purpose": c.purpose}
                for c in self.next_commands
            ],
            "errors": [e.explanation.brief(e.count) for e in self.errors]
            if self.errors
            else [self.brief()],
        }


@dataclass(frozen=True)
class ExplainedError:
    """One of several distinct errors in a paste, and how many of its bodies say it."""

    explanation: Explanation
    count: int


def explain_text(text: str) -> Explanation:
    """Explain any text that carries an error. Only a text with no error in it at all (no
    failure status, error word, exception name or code) raises NoArmError."""
    facts = parse_error_text(text)
    if facts is None:
        raise NoArmError("no error found in the input")
    result = explain_all(facts)
    source = foreign_source(text)
    return dataclasses.replace(result, foreign_source=source) if source else result


def explain_all(facts: ParsedError) -> Explanation:
    """Explain the paste; when it holds several distinct error bodies, explain each, group
    repeats of one error (same kind and code), and put the most severe first."""
    if len(facts.bodies) < 2:
        return explain(facts)
    groups: dict[tuple[ConflictKind, str], list[Explanation]] = {}
    for index in range(len(facts.bodies)):
        one = explain(body_facts(facts, index))
        groups.setdefault((one.kind, one.facts.code.lower()), []).append(one)
    if len(groups) < 2:
        # One error said many times (a retry storm's 409s): explained once, counted.
        whole = explain(facts)
        return dataclasses.replace(whole, errors=(ExplainedError(whole, len(facts.bodies)),))
    ranked = sorted(groups.values(), key=lambda g: SEVERITY.index(g[0].kind))
    errors = tuple(ExplainedError(g[0], len(g)) for g in ranked)
    first = ranked[0][0]
    # The paste's own facts (its format, its IDs) stay; the explanation is of the first error.
    return dataclasses.replace(
        first, facts=dataclasses.replace(first.facts, format=facts.format), errors=errors
    )


def explain(facts: ParsedError) -> Explanation:
    headers = dict(facts.headers)
    error = facts.error
    if facts.residue:
        # A body that did not decode still says what happened; let its words count.
        error = dataclasses.replace(error, details=(*error.details, ErrorDetail("", facts.residue)))
    c = classify_error(facts.status, error, headers)
    ctx = _Context(facts, c)
    builder = _BUILDERS[c.kind]
    meaning, recovery, wrong = builder(ctx)
    return Explanation(
        facts=facts,
        classification=c,
        meaning=meaning,
        recovery=tuple(recovery),
        wrong_fix=tuple(wrong),
        next_commands=tuple(_commands(ctx)),
    )


# --- facts as words ---------------------------------------------------------------------------


class _Context:
    def __init__(self, facts: ParsedError, c: Classification) -> None:
        self.facts = facts
        self.c = c
        self.op_url = facts.operation_url or c.operation_url
        self.sent = facts.etag_submitted or c.etag_sent
        self.live = facts.etag_live or c.etag_live
        self.retry_after = facts.retry_after if facts.retry_after is not None else c.retry_after
        self.low = (facts.text + " " + " ".join(n.message for n in facts.error.walk())).lower()
        locked = {s.lower() for s in c.locked_scopes}
        candidates = [
            r
            for r in facts.resource_ids
            if r.key not in locked and r.type.lower() != "microsoft.authorization/locks"
        ]
        resources = [r for r in candidates if r.is_resource]
        self.resource: ResourceId | None = (
            next((r for r in resources if not _is_deployment(r)), None)
            or (resources[0] if resources else None)
            or (candidates[0] if candidates else None)
        )
        self.group = _group_of(self.resource, facts.resource_ids, c.locked_scopes)

        m = _VM_NAME_RE.search(facts.text)
        self.vm_name: str | None = next((g for g in m.groups() if g), None) if m else None

    @property
    def target(self) -> str:
        if self.resource is not None and self.resource.is_resource:
            return f"{self.resource.type} '{self.resource.name}'"
        if self.vm_name:
            return f"VM '{self.vm_name}'"
        return "the resource"

    @property
    def is_vm(self) -> bool:
        if self.resource is not None and self.resource.is_resource:
            return self.resource.type.lower() == "microsoft.compute/virtualmachines"
        return self.vm_name is not None or "virtual machine" in self.low

    @property
    def vm_args(self) -> str:
        """How ``az vm`` commands name the VM: by ID when known, else group and name."""
        if self.resource is not None and self.is_vm and self.resource.is_resource:
            return f'--ids "{self.resource}"'
        group = self.group.resource_group if self.group is not None else "$RESOURCE_GROUP"
        return f"--resource-group {group} --name {self.vm_name or '$VM_NAME'}"

    def codes(self) -> set[str]:
        return {x.lower() for x in self.c.codes}


_VM_NAME_RE = re.compile(
    r"\bon VM '([^'\s]+)'|Virtual Machine Name: \"([^\"]+)\"|virtualMachines/([^/\s'\"]+)"
)


def _is_deployment(r: ResourceId) -> bool:
    return r.type.lower() == "microsoft.resources/deployments"


def _group_of(
    resource: ResourceId | None, ids: tuple[ResourceId, ...], scopes: tuple[str, ...]
) -> ResourceId | None:
    if resource is not None and resource.resource_group_id is not None:
        return resource.resource_group_id
    for r in ids:
        if r.resource_group_id is not None:
            return r.resource_group_id
    for s in scopes:
        try:
            rid = parse_resource_id(s)
        except InvalidResourceId:
            continue
        if rid.resource_group_id is not None:
            return rid.resource_group_id
    return None


_Built = tuple[str, list[str], list[str]]


def _stale(ctx: _Context) -> _Built:
    tokens = ""
    if ctx.sent and ctx.live:
        tokens = f" The write carried ETag {ctx.sent}; the live resource is at {ctx.live}."
    elif ctx.sent:
        tokens = f" The write carried ETag {ctx.sent}, which is no longer current."
    meaning = (
        f"ARM rejected a stale write to {ctx.target}: another writer changed it after this "
        f"client read it (optimistic concurrency, not an outage).{tokens}"
    )
    recovery = [
        f"Re-read {ctx.target} with a GET and take its current ETag.",
        "If the live state already contains the intended change, stop: the write is done.",
        "Otherwise rebase the intended change on the fresh body and send it with "
        "If-Match set to the fresh ETag.",
        "If the change was computed from the old state and cannot be recomputed, drop it "
        "instead of replaying it.",
        "Serialise writers of this resource (one queue per resource ID) so the next write "
        "starts from the state the previous one left.",
    ]
    wrong = [
        "Retrying the same request with the same stale ETag and body: it fails the same way "
        "until the baseline changes.",
        "Removing If-Match or switching to last-writer-wins: that silently overwrites the "
        "other writer's change.",
        "Treating the 412 as an availability failure and backing off: it is deterministic.",
    ]
    return meaning, recovery, wrong


def _in_progress(ctx: _Context) -> _Built:
    codes = ctx.codes()
    deployment = ctx.facts.deployment_name
    if "operationpreempted" in codes or "preempted" in ctx.low:
        meaning = (
            f"A newer write to {ctx.target} preempted this operation, which ended Canceled; "
            "the newer operation now owns the resource."
        )
        recovery = [
            f"Watch {ctx.target}'s provisioningState until it is terminal (Succeeded, Failed "
            "or Canceled).",
            "Re-read the resource: if the newer write already includes the intended change, "
            "the job is done.",
            "Otherwise rebase the change on the fresh state and write once, with one writer "
            "per resource.",
        ]
    elif "deploymentactive" in codes or "deploymentactiveanduneditable" in codes:
        name = f"'{deployment}'" if deployment else "of the same name"
        meaning = (
            f"The deployment {name} is still running, and ARM does not replace or edit an "
            "active deployment."
        )
        recovery = [
            f"Watch deployment {name} until its provisioningState is terminal "
            "(az deployment group show … --query properties.provisioningState).",
            "Then run the deployment again; or give concurrent deployments distinct names "
            "only if they touch disjoint resources.",
            "Serialise pipelines that deploy to this resource group (one concurrency group "
            "per resource group).",
        ]
    else:
        held = f" The running operation's status URL is {ctx.op_url}." if ctx.op_url else ""
        meaning = (
            f"Another operation is still running on {ctx.target} or a resource it depends on "
            f"(a parent, child or referenced resource), so ARM refused this write rather than "
            f"queue it.{held}"
        )
        first = (
            f"Poll {ctx.op_url} until its status is Succeeded, Failed or Canceled."
            if ctx.op_url
            else f"Watch {ctx.target}'s provisioningState (and its parent's) until it is "
            "terminal: Succeeded, Failed or Canceled."
        )
        recovery = [
            first,
            "Then re-read the resource and retry once, from the fresh state.",
            "Serialise writes per resource ID and parent scope (for example every subnet, "
            "NSG and route-table change of one virtual network).",
        ]
    if ctx.retry_after is not None:
        recovery.insert(
            1,
            f"ARM suggests {ctx.retry_after:g} s before the next attempt: use it as the "
            "earliest poll time, not as a fixed sleep.",
        )
    wrong = [
        "Retrying immediately or in a tight loop while the operation runs: a retry storm "
        "that only multiplies conflicts.",
        "A fixed sleep (for example 60 s) before retrying: operations take from seconds to "
        "hours; wait on the operation's status instead.",
        "Refreshing ETags or treating this as a version conflict: the blocker is a running "
        "operation, not a stale token.",
        "Running more pipelines in parallel against the same resource or resource group.",
    ]
    return meaning, recovery, wrong


_PREREQUISITE_STEPS: dict[str, tuple[str, list[str]]] = {
    "deallocate": (
        "needs the VM deallocated first",
        [
            "Deallocate it: az vm deallocate {vm} --no-wait.",
            "Wait until its instance view shows PowerState/deallocated (poll, do not sleep).",
            "{apply}",
            "Start it again if it should run: az vm start {vm}.",
        ],
    ),
    "powerOff": (
        "needs the VM powered off first",
        [
            "Power it off: az vm stop {vm}.",
            "Wait until its instance view shows PowerState/stopped.",
            "{apply}",
        ],
    ),
    "start": (
        "needs the VM running, but it is deallocated or being deallocated",
        [
            "If the goal was to stop or deallocate it, it is already there: treat the job as done.",
            "Otherwise start it: az vm start {vm}, and wait until PowerState/running.",
            "{apply}",
        ],
    ),
    "wait_for_delete": (
        "is being deleted, so only the delete can proceed",
        [
            "Wait until the delete finishes (the resource returns 404).",
            "Recreate the resource if it is still wanted, then apply the change.",
        ],
    ),
    "delete_nested": (
        "has nested resources, and ARM deletes a parent only after its children",
        [
            "List its nested resources: the message names some of them.",
            "Delete them first, and wait until each returns 404 (a delete that was just "
            "accepted can still count as existing for a short while).",
            "Then delete this resource again.",
        ],
    ),
    "detach": (
        "is still in use by another resource (attached, associated or referenced)",
        [
            "Find what uses it: the message names the referencing resource.",
            "Detach or disassociate it there, and wait for that update to reach Succeeded.",
            "{apply}",
        ],
    ),
}


def _state(ctx: _Context) -> _Built:
    pre = ctx.c.prerequisite
    vm = ctx.vm_args
    size = ctx.facts.vm_size
    apply = (
        f"Resize to {size}, then confirm provisioningState is Succeeded."
        if size and pre == "deallocate"
        else "Run the original operation again once the state is confirmed."
    )
    if pre in _PREREQUISITE_STEPS:
        need, steps = _PREREQUISITE_STEPS[pre]
        recovery = [s.format(vm=vm, apply=apply) for s in steps]
    else:
        need = "is not in the state the operation requires"
        recovery = [
            "Read its provisioningState and runtime state.",
            "Run the prerequisite transition the message names, and wait on the state.",
            apply,
        ]
    extra = f" Resizing to {size} is only possible this way." if size else ""
    meaning = f"The operation on {ctx.target} {need}; it is valid later, not now.{extra}"
    wrong = [
        "Retrying the same operation without the prerequisite transition: the state does not "
        "change by itself.",
        "A fixed sleep before retrying: wait until the state is observed, not for a guess.",
        "Treating it as an ETag conflict and refreshing tokens.",
    ]
    return meaning, recovery, wrong


def _locked(ctx: _Context) -> _Built:
    scopes = ", ".join(ctx.c.locked_scopes) or "a parent scope"
    action = "delete" if "perform delete" in ctx.low else "write"
    meaning = (
        f"A management lock on {scopes} forbids this {action} on {ctx.target}. A lock is a "
        "deliberate decision by a person; it will not clear by waiting."
    )
    recovery = [
        "Stop this write: retrying cannot succeed while the lock exists.",
        "List the locks and their notes to find who owns them and why.",
        "Ask the lock owner; if the change is approved, they make it or lift the lock under "
        "their own change process.",
    ]
    wrong = [
        "Removing or bypassing the lock from automation to get the write through.",
        "Retrying or backing off: a lock is not a transient conflict.",
        "Treating the 409 as another operation in progress.",
    ]
    return meaning, recovery, wrong


def _not_allowed(ctx: _Context) -> _Built:
    codes = ctx.codes()
    if "requestdisallowedbypolicy" in codes or "policy" in ctx.low:
        meaning = f"An Azure Policy assignment denies this request on {ctx.target}."
        steps = [
            "Read the policy assignment and definition named in the error.",
            "Change the request to comply, or request an exemption from the policy owner.",
        ]
    elif "propertychangenotallowed" in codes or "changing property" in ctx.low:
        meaning = (
            f"The request changes a property of {ctx.target} that cannot change after creation."
        )
        steps = [
            "Leave the immutable property as it is, or replace the resource (create new, "
            "move traffic, delete old) deliberately."
        ]
    elif "authorization" in ctx.low or "does not have authorization" in ctx.low:
        meaning = "The caller lacks the role assignment this action needs."
        steps = ["Grant the needed role at the narrowest scope, then retry once."]
    elif any(k in ctx.low for k in ("quota", "limit", "exceed")):
        meaning = f"The request would exceed a quota or limit for {ctx.target}."
        steps = [
            "Check current usage against the limit.",
            "Request a quota increase, or choose a smaller size or another region.",
        ]
    elif "sku" in ctx.low or "allocation" in ctx.low or "not available" in ctx.low:
        meaning = "The SKU or size is not available for this request here and now."
        steps = ["Choose a SKU or size available in the region/zone, or another region."]
    else:
        meaning = f"A rule of the platform forbids this operation on {ctx.target} in any state."
        steps = ["Read the reason in the message and change the request."]
    recovery = [*steps, "Only then submit again; waiting alone changes nothing."]
    wrong = [
        "Retrying or backing off: the rule holds in every state and at every time.",
        "Disabling the policy, lock or check that said no instead of fixing the request.",
    ]
    return meaning, recovery, wrong


def _throttled(ctx: _Context) -> _Built:
    wait = f"{ctx.retry_after:g} s" if ctx.retry_after is not None else "the Retry-After header"
    meaning = (
        "ARM or the resource provider throttled the caller: too many requests for this "
        "subscription, principal or operation in the current window."
    )
    recovery = [
        f"Wait {wait} before the next request; requests sent earlier are refused and restart the wait.",
        "Retry inside a retry budget, with jitter across workers so they do not wake together.",
        "Reduce the request rate: cache reads, coalesce writes, poll less often.",
    ]
    wrong = [
        "Retrying immediately or on a short fixed interval: it extends the throttling.",
        "Adding parallel workers or principals to push more requests through.",
    ]
    return meaning, recovery, wrong


def _transient(ctx: _Context) -> _Built:
    meaning = (
        "A transient service-side failure (5xx, gateway or timeout): the request may or may "
        "not have been applied."
    )
    first = (
        f"Poll {ctx.op_url} to learn whether the operation actually finished."
        if ctx.op_url
        else f"Re-read {ctx.target}: a write that timed out may have been applied."
    )
    recovery = [
        first,
        "Retry with exponential backoff and full jitter, inside a retry budget.",
        "If failures persist, keep the correlation ID for a support case.",
    ]
    wrong = [
        "Unbounded retries or a tight loop without jitter.",
        "Replaying a write without first checking whether it already took effect.",
    ]
    return meaning, recovery, wrong


def _not_found(ctx: _Context) -> _Built:
    meaning = (
        f"ARM cannot find {ctx.target} or one of its parents (resource group, parent resource)."
    )
    recovery = [
        "Check the subscription, resource group and name in the ID.",
        "If the parent is created by the same deployment, order it first (dependsOn).",
        "If someone deleted it concurrently, decide deliberately whether to recreate it.",
    ]
    wrong = [
        "Retrying in a loop hoping it appears.",
        "Recreating it blindly without checking who deleted it and why.",
    ]
    return meaning, recovery, wrong


def _invalid(ctx: _Context) -> _Built:
    meaning = "The request itself is invalid: ARM rejected its content before acting on it."
    recovery = [
        "Read the message (and target) for the invalid property.",
        "Fix the template or request, validate it, then submit once.",
    ]
    wrong = ["Retrying the unchanged request: it is rejected every time."]
    return meaning, recovery, wrong


def _unknown(ctx: _Context) -> _Built:
    code = f"'{ctx.facts.code}'" if ctx.facts.code else "this error"
    meaning = f"No known conflict signal in {code}; the message is the only guide."
    recovery = [
        "Read the message and the nested details for the root cause.",
        "Look at the Activity Log around the failure for overlapping writers.",
        "Retry only once the cause is understood.",
    ]
    wrong = ["Blind retries or fixed sleeps without knowing the cause."]
    return meaning, recovery, wrong


_NAMESPACE_RE = re.compile(r"namespace '([\w.]+)'|registered for the resource type '([^']+)'", re.I)
_ACTION_RE = re.compile(r"perform action '([^']+)'", re.I)
_SCOPE_RE = re.compile(r"(?:over|on) (?:the )?(?:linked )?scope(?:\(s\))? '([^']+)'", re.I)


def _not_registered(ctx: _Context) -> _Built:
    m = _NAMESPACE_RE.search(ctx.facts.text + " " + ctx.low)
    namespace = next((g for g in m.groups() if g), None) if m else None
    what = f"the resource provider {namespace}" if namespace else "the resource provider it uses"
    meaning = (
        f"The subscription is not registered for {what}, so ARM refuses every request to it "
        "until someone registers it. It is a one-time setup step, not a rule and not an outage."
    )
    ns = namespace or "$NAMESPACE"
    recovery = [
        f"Register it once: az provider register --namespace {ns} (needs the "
        "*/register/action permission, which Contributor and Owner have on the subscription).",
        f"Wait until az provider show --namespace {ns} --query registrationState says "
        "Registered (minutes).",
        "Then run the same request again; nothing in it needs to change.",
    ]
    wrong = [
        "Retrying or backing off: the request fails the same way until the provider is registered.",
        "Treating it as a policy refusal and asking for an exemption: nothing forbids the "
        "request once the provider is registered.",
    ]
    return meaning, recovery, wrong


def _not_authorized(ctx: _Context) -> _Built:
    text = ctx.facts.text + " " + " ".join(n.message for n in ctx.facts.error.walk())
    action = _ACTION_RE.search(text)
    scope = _SCOPE_RE.search(text)
    needs = f" the action {action.group(1)}" if action else " this action"
    where = f" on {scope.group(1)}" if scope else ""
    meaning = (
        f"The caller (user, service principal or managed identity) has no role that grants"
        f"{needs}{where}. Azure RBAC decides this per principal and scope; waiting does not "
        "change it."
    )
    recovery = [
        f"Find the principal in the message and the role that grants{needs} (a built-in role, "
        "or a data-plane role such as Storage Blob Data Contributor for data requests).",
        f"Have someone who may assign roles grant it at the narrowest scope{where or ''}.",
        "Refresh the caller's token (sign in again, or wait a few minutes for a managed "
        "identity), then retry once.",
    ]
    wrong = [
        "Retrying or backing off: the request fails the same way until the role is granted.",
        "Granting Owner or Contributor on the whole subscription to get past one action.",
        "Treating it as a policy or quota refusal: a role assignment fixes it.",
    ]
    return meaning, recovery, wrong


_BUILDERS = {
    ConflictKind.NOT_REGISTERED: _not_registered,
    ConflictKind.NOT_AUTHORIZED: _not_authorized,
    ConflictKind.STALE_VERSION: _stale,
    ConflictKind.OPERATION_IN_PROGRESS: _in_progress,
    ConflictKind.STATE_PREREQUISITE: _state,
    ConflictKind.LOCKED: _locked,
    ConflictKind.NOT_ALLOWED: _not_allowed,
    ConflictKind.THROTTLED: _throttled,
    ConflictKind.TRANSIENT: _transient,
    ConflictKind.NOT_FOUND: _not_found,
    ConflictKind.INVALID: _invalid,
    ConflictKind.UNKNOWN: _unknown,
}


# --- next commands ----------------------------------------------------------------------------

_ACTIVITY_QUERY = (
    '"[].{time:eventTimestamp, caller:caller, operation:operationName.value, status:status.value}"'
)


def _commands(ctx: _Context) -> list[NextCommand]:
    out: list[NextCommand] = []
    kind = ctx.c.kind
    rid = str(ctx.resource) if ctx.resource is not None else None
    ids = f'"{rid}"' if rid else '"$RESOURCE_ID"'
    group = ctx.group.resource_group if ctx.group is not None else None
    rg = group or "$RESOURCE_GROUP"

    def az(command: str, purpose: str) -> None:
        out.append(NextCommand("az", command, purpose))

    if ctx.op_url and kind in (ConflictKind.OPERATION_IN_PROGRESS, ConflictKind.TRANSIENT):
        az(f'az rest --method get --url "{ctx.op_url}"', "status of the running operation")
    if kind is ConflictKind.STATE_PREREQUISITE and ctx.is_vm:
        az(
            f"az vm get-instance-view {ctx.vm_args} --query "
            "\"{power:instanceView.statuses[?starts_with(code, 'PowerState/')].displayStatus "
            '| [0], provisioning:provisioningState}"',
            "power and provisioning state",
        )
    else:
        az(
            f"az resource show --ids {ids} --query "
            '"{provisioningState:properties.provisioningState, etag:etag}"',
            "live provisioning state and ETag",
        )
    if kind is ConflictKind.LOCKED:
        scope = f"--resource-group {rg}" if group or not ctx.c.locked_scopes else ""
        az(f"az lock list {scope} --output table".replace("  ", " "), "the locks and their notes")
    if kind is ConflictKind.OPERATION_IN_PROGRESS and (
        ctx.facts.deployment_name or "deployment" in ctx.low
    ):
        name = ctx.facts.deployment_name or "$DEPLOYMENT_NAME"
        # A deployment ID without a group is a subscription-scope deployment.
        at_sub = ctx.resource is not None and _is_deployment(ctx.resource) and not group
        scope = "sub" if at_sub else "group"
        where = "" if at_sub else f" --resource-group {rg}"
        az(
            f"az deployment {scope} list{where} --query "
            "\"[?properties.provisioningState=='Running'].{name:name, started:properties.timestamp}\" "
            "--output table",
            "deployments still running in the scope",
        )
        az(
            f"az deployment operation {scope} list{where} --name {name} --query "
            '"[].{op:properties.provisioningOperation, state:properties.provisioningState, '
            'resource:properties.targetResource.id}" --output table',
            "the deployment's operations and which resource each holds",
        )
    if kind is ConflictKind.THROTTLED:
        az(
            "az rest --method get --url "
            '"/subscriptions/$SUBSCRIPTION_ID/resourcegroups?api-version=2021-04-01" --debug '
            "2>&1 | grep -i x-ms-ratelimit-remaining",
            "remaining request budget",
        )
    if kind is ConflictKind.NOT_REGISTERED:
        m = _NAMESPACE_RE.search(ctx.facts.text + " " + ctx.low)
        ns = (next((g for g in m.groups() if g), None) if m else None) or "$NAMESPACE"
        if "/" in ns:  # a resource type, not a namespace: registration is per namespace
            ns = "$NAMESPACE"
        az(f"az provider show --namespace {ns} --query registrationState", "registration state")
        az(f"az provider register --namespace {ns}", "register the provider (once)")
    if kind is ConflictKind.NOT_AUTHORIZED:
        on = _SCOPE_RE.search(ctx.facts.text)
        where = f' --scope "{on.group(1)}"' if on else (f" --scope {ids}" if rid else "")
        az(
            f"az role assignment list --assignee $PRINCIPAL_ID{where} --include-inherited "
            "--output table",
            "the roles the caller holds there",
        )
    if kind is ConflictKind.NOT_ALLOWED and "policy" in ctx.low:
        az(
            f"az policy state list --resource {ids} --filter \"complianceState eq 'NonCompliant'\"",
            "policy verdicts",
        )
    if rid:
        az(
            f"az monitor activity-log list --resource-id {ids} --offset 1h --query "
            f"{_ACTIVITY_QUERY} --output table",
            "who else wrote this resource in the last hour",
        )
    elif ctx.facts.correlation_ids:
        az(
            f"az monitor activity-log list --correlation-id {ctx.facts.correlation_ids[0]} "
            f"--query {_ACTIVITY_QUERY} --output table",
            "every event of the failed operation",
        )
    else:
        az(
            f"az monitor activity-log list --resource-group {rg} --offset 1h --status Failed "
            f"--query {_ACTIVITY_QUERY} --output table",
            "recent failures in the group",
        )
    out.append(NextCommand("armguard", f"armguard inspect {ids}", "what a write would hit now"))
    # timeline reads Activity Log exports; save one for the same scope first.
    if rid:
        source = f"--resource-id {ids}"
    elif ctx.facts.correlation_ids:
        source = f"--correlation-id {ctx.facts.correlation_ids[0]}"
    else:
        source = f"--resource-group {rg}"
    az(
        f"az monitor activity-log list {source} --offset 1h --output json > activity.json",
        "save the Activity Log for armguard timeline",
    )
    resource = f" --resource {ids}" if rid else ""
    out.append(
        NextCommand(
            "armguard",
            f"armguard timeline activity.json{resource} --since 1h",
            "overlapping writers, conflicts and retry storms around the failure",
        )
    )
    return out
