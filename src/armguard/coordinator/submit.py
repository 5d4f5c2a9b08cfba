"""Turn a writer's intent on a resource into a queued job: validated, scoped, serialisable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from armguard.arm.ids import parse_resource_id
from armguard.coordinator.intents import Intent, MergeIntent, PutIntent, ResizeIntent
from armguard.coordinator.model import Job, JobSpec, StalePolicy
from armguard.coordinator.resource_types import api_version_for
from armguard.coordinator.scopes import lock_keys
from armguard.coordinator.store import Store

__all__ = ["build_spec", "submit"]

_VM_TYPE = "microsoft.compute/virtualmachines"


def _body_of(intent: Intent) -> Mapping[str, Any] | None:
    """The part of the body an intent writes, where references to other resources can hide."""
    if isinstance(intent, PutIntent):
        return intent.body
    if isinstance(intent, MergeIntent):
        return intent.patch
    return None


def build_spec(
    resource_id: str,
    intent: Intent,
    writer: str,
    *,
    baseline_etag: str | None = None,
    on_stale: StalePolicy = StalePolicy.REBASE,
    idempotency_key: str | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> JobSpec:
    """A :class:`JobSpec` for ``intent`` on ``resource_id``.

    Raises ``InvalidResourceId`` for a malformed ID, ``ApiVersionRequired`` for a type armguard
    has no api-version for (unless the intent names one), ``ValueError`` for a blank writer.
    """
    rid = parse_resource_id(resource_id)
    if not rid.is_resource and not rid.is_resource_group:
        raise ValueError(f"'{resource_id}' is a subscription; armguard writes resources and groups")
    if not isinstance(writer, str) or not writer.strip():
        raise ValueError("a writer name is required (it is the caller in the Activity Log)")
    api_version_for(rid, intent.api_version)
    if isinstance(intent, ResizeIntent) and rid.type.lower() != _VM_TYPE:
        # It writes properties.hardwareProfile.vmSize, which only a VM has; on anything else
        # it would be a body ARM refuses, or worse, one a permissive provider keeps.
        raise ValueError(
            f"a resize intent changes a virtual machine's size; {rid.type} is not a "
            "Microsoft.Compute/virtualMachines resource (use a merge intent for other types)"
        )
    if baseline_etag is not None and not baseline_etag.strip():
        raise ValueError("a baseline ETag cannot be blank")
    if baseline is not None:
        if not isinstance(baseline, Mapping):
            raise ValueError("a baseline must be the resource body the writer read (an object)")
        read_etag = baseline.get("etag")
        if baseline_etag is None and isinstance(read_etag, str) and read_etag.strip():
            baseline_etag = read_etag
        # Without an ETag (types that have none) the body itself is compared when the job's
        # turn comes.
    if idempotency_key is not None and not idempotency_key.strip():
        raise ValueError("an idempotency key cannot be blank")
    return JobSpec(
        resource_id=rid.format(),
        intent=intent.to_json(),
        writer=writer.strip(),
        lock_keys=lock_keys(rid, _body_of(intent)),
        baseline_etag=baseline_etag,
        on_stale=on_stale,
        idempotency_key=idempotency_key,
        barrier=intent.barrier,
        baseline=dict(baseline) if baseline is not None else None,
    )


def submit(
    store: Store,
    resource_id: str,
    intent: Intent,
    writer: str,
    *,
    baseline_etag: str | None = None,
    on_stale: StalePolicy = StalePolicy.REBASE,
    idempotency_key: str | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> Job:
    """Queue ``intent`` on ``resource_id`` as ``writer``. ``baseline`` is the body the writer
    read before building the intent (its ``etag`` is the baseline ETag): with it, a job whose
    resource moved on is rebased three-way instead of failing."""
    spec = build_spec(
        resource_id,
        intent,
        writer,
        baseline_etag=baseline_etag,
        on_stale=on_stale,
        idempotency_key=idempotency_key,
        baseline=baseline,
    )
    return store.submit(spec)
