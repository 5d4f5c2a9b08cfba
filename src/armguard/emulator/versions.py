"""``api-version`` validation: mandatory on every request, well-formed, and one the addressed
type's real API serves (see :mod:`~armguard.emulator.catalog` for which versions, and why a
version newer than the catalog's is let through); the namespace must be a registered one.
"""

from __future__ import annotations

import re
from typing import Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.catalog import check_api_version_for, check_namespace
from armguard.emulator.routing import CollectionRoute, ListRoute, ResourceRoute, Route

__all__ = ["check_api_version", "check_route_version"]

_API_VERSION_RE = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-(preview|alpha|beta|rc|privatepreview))?$",
    re.IGNORECASE,
)


def check_api_version(value: str | None) -> str:
    if value is None or not value.strip():
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION_RE.match(value.strip()):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{value}' is invalid. The supported versions are "
            "'YYYY-MM-DD[-preview|-alpha|-beta|-rc|-privatepreview]'.",
        )
    return value.strip()


def check_route_version(target: Route, version: str, body: Any = None) -> None:
    """Refuse an unknown namespace or an api-version the addressed type does not serve.

    ``target`` is a route (:mod:`~armguard.emulator.routing`); routes that address no
    resource type (operation status, the Activity Log) pass."""
    rid: ResourceId | None = None
    type_: str | None = None
    if isinstance(target, ResourceRoute):
        rid, type_ = target.id, target.id.type
    elif isinstance(target, CollectionRoute):
        rid, type_ = target.parent, target.parent.type
    elif isinstance(target, ListRoute):
        rid = target.scope
        if target.namespace and target.type:
            type_ = f"{target.namespace}/{target.type}"
            check_namespace(target.namespace)
        elif target.groups:
            type_ = "Microsoft.Resources/resourceGroups"
    if rid is None:
        return
    if type_ is None or (rid.is_subscription and isinstance(target, ResourceRoute)):
        type_ = None
    _check_cached(tuple(level.namespace for level in rid.levels), type_, version, body)


def _check_cached(namespaces: tuple[str, ...], type_: str | None, version: str, body: Any) -> None:
    if (namespaces, type_, version) in _ACCEPTED:
        return
    for namespace in namespaces:
        check_namespace(namespace)
    if type_ is not None:
        location = body.get("location") if isinstance(body, dict) else None
        check_api_version_for(type_, version, location if isinstance(location, str) else None)
    # Every request of a client names the same few (type, version) pairs: remember the ones
    # that passed (a refusal is raised afresh, its text names the request's location).
    if len(_ACCEPTED) < 4096:
        _ACCEPTED.add((namespaces, type_, version))


_ACCEPTED: set[tuple[tuple[str, ...], str | None, str]] = set()
