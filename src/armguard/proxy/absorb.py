"""Which refusals the proxy waits out for its client, and how long it waits each time.

A refusal caused by another writer — ``409 AnotherOperationInProgress``, ``OperationPreempted``,
``DeploymentActive``, a ``RetryableError`` naming another operation, a ``429`` — says nothing
was done and the same request will succeed later. The proxy waits on the operation ARM names
when it names one (never a fixed sleep), otherwise backs off with full jitter above ARM's
``Retry-After``, and resends within one retry budget per upstream. Everything else is the
client's to see: a 412 (its version is stale: resending cannot help), a state prerequisite (a
person or the client decides to deallocate), locks, policy, invalid requests, and 5xx on a
write (its outcome is unknown; resending could apply it twice).
"""

from __future__ import annotations

from armguard.arm.classify import Classification, ConflictKind, classify_error
from armguard.arm.errors import parse_error_body
from armguard.proxy.upstream import Answer

__all__ = ["ABSORBED", "absorbable", "classify_answer"]

ABSORBED = frozenset({ConflictKind.OPERATION_IN_PROGRESS, ConflictKind.THROTTLED})


def classify_answer(answer: Answer) -> Classification:
    headers = {k.lower(): v for k, v in answer.headers}
    return classify_error(answer.status, parse_error_body(answer.status, answer.body), headers)


def absorbable(answer: Answer, classification: Classification) -> bool:
    """Whether ARM refused without doing anything, because of someone else's work."""
    if answer.status not in (409, 429):
        return False
    return classification.kind in ABSORBED
