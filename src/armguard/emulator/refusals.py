"""The refusals several parts of the core share: not found, precondition failed, method not
allowed, internal error, each with ARM's code and wording."""

from __future__ import annotations

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.emulator.conditions import etags_match, normalize_etag

__all__ = ["internal_error", "method_not_allowed", "not_found", "precondition_failed"]


def internal_error() -> ArmError:
    """What a client sees when the emulator itself fails: no traceback, a pointer to the log.
    It does not promise the request had no effect: a failure may come after a change."""
    return ArmError(
        500,
        "InternalServerError",
        "The emulator hit an unexpected error while serving the request. See the emulator's "
        "log for the traceback.",
    )


def not_found(rid: ResourceId) -> ArmError:
    if rid.is_resource_group:
        return ArmError(
            404,
            "ResourceGroupNotFound",
            f"Resource group '{rid.resource_group}' could not be found.",
        )
    top = rid.levels[0] if rid.levels else None
    type_name = f"{top.namespace}/{top.pairs[0][0]}/{top.pairs[0][1]}" if top else rid.format()
    if rid.is_child or (rid.levels and len(rid.levels) > 1):
        type_name = f"{rid.type}/{rid.name}"
    where = (
        f"under resource group '{rid.resource_group}'"
        if rid.resource_group
        else "in the subscription"
    )
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{type_name}' {where} was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix",
    )


def precondition_failed(
    style: str,
    rid: ResourceId,
    current: str | None,
    *,
    exists: bool,
    if_match: str | None,
    if_none_match: str | None,
) -> ArmError:
    """The 412 for a failed condition, naming the header that failed: ``If-Match`` when it
    is present and does not match (or the resource is absent), otherwise ``If-None-Match``."""
    match_failed = not exists or (
        if_match is not None and bool(if_match.strip()) and not etags_match(if_match, current)
    )
    if match_failed:
        sent = if_match.strip() if if_match else None
        return _if_match_failed(style, rid, (current or "") if exists else None, sent)
    sent = (if_none_match or "").strip()
    wildcard = "*" in [part.strip() for part in sent.split(",")]
    current = current or ""
    if style == "weak-guid":
        if wildcard:
            detail = ErrorDetail(
                "PreconditionFailedResourceExists",
                f"Resource {rid.format()} exists, so the if-none-match condition is not met",
            )
        else:
            detail = ErrorDetail(
                "PreconditionFailedEtagMatch",
                f'Etag provided in if-none-match header W/"{normalize_etag(sent)}" matches etag '
                f'W/"{normalize_etag(current)}" of resource {rid.format()}',
            )
        return ArmError(412, "PreconditionFailed", "Precondition failed.", details=[detail])
    if wildcard:
        return ArmError(
            412, "PreconditionFailed", "The resource exists, so the if-none-match condition fails."
        )
    return ArmError(
        412,
        "PreconditionFailed",
        f'Etag provided in if-none-match header "{normalize_etag(sent)}" matches etag '
        f"{current} of resource.",
    )


def _if_match_failed(
    style: str, rid: ResourceId, current: str | None, sent: str | None
) -> ArmError:
    if style == "weak-guid":
        if current is None:
            detail = ErrorDetail(
                "PreconditionFailedResourceNotFound",
                f"Resource {rid.format()} does not exist, so the if-match condition cannot be met",
            )
        else:
            detail = ErrorDetail(
                "PreconditionFailedEtagMismatch",
                f'Etag provided in if-match header W/"{normalize_etag(sent or "")}" does not '
                f'match etag W/"{normalize_etag(current)}" of resource {rid.format()}',
            )
        return ArmError(412, "PreconditionFailed", "Precondition failed.", details=[detail])
    if current is None:
        return ArmError(
            412,
            "PreconditionFailed",
            "The resource does not exist, so the if-match condition fails.",
        )
    return ArmError(
        412,
        "PreconditionFailed",
        f'Etag provided in if-match header "{normalize_etag(sent or "")}" does not match etag '
        f"{current} of resource.",
    )


def method_not_allowed(method: str, path: str) -> ArmError:
    return ArmError(
        405,
        "MethodNotAllowed",
        f"The requested resource does not support http method '{method}' at '{path}'.",
    )
