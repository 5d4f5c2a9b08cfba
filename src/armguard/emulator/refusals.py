"""The refusals several parts of the core share: not found, precondition failed, method not
allowed, each with ARM's code and wording."""

from __future__ import annotations

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.emulator.conditions import normalize_etag

__all__ = ["method_not_allowed", "not_found", "precondition_failed"]


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
    style: str, rid: ResourceId, current: str | None, sent: str | None
) -> ArmError:
    if style == "weak-guid":
        details: list[ErrorDetail] = []
        if sent and current:
            details.append(
                ErrorDetail(
                    "PreconditionFailedEtagMismatch",
                    f'Etag provided in if-match header W/"{normalize_etag(sent)}" does not match '
                    f'etag W/"{normalize_etag(current)}" of resource {rid.format()}',
                )
            )
        elif current is None:
            details.append(
                ErrorDetail(
                    "PreconditionFailedResourceNotFound",
                    f"Resource {rid.format()} does not exist, so the if-match condition cannot "
                    "be met",
                )
            )
        else:
            details.append(
                ErrorDetail(
                    "PreconditionFailedResourceExists",
                    f"Resource {rid.format()} exists, so the if-none-match condition is not met",
                )
            )
        return ArmError(412, "PreconditionFailed", "Precondition failed.", details=details)
    if sent and current:
        return ArmError(
            412,
            "PreconditionFailed",
            f'Etag provided in if-match header "{normalize_etag(sent)}" does not match etag '
            f"{current} of resource.",
        )
    if current is None:
        return ArmError(
            412,
            "PreconditionFailed",
            "The resource does not exist, so the if-match condition fails.",
        )
    return ArmError(
        412, "PreconditionFailed", "The resource exists, so the if-none-match condition fails."
    )


def method_not_allowed(method: str, path: str) -> ArmError:
    return ArmError(
        405,
        "MethodNotAllowed",
        f"The requested resource does not support http method '{method}' at '{path}'.",
    )
