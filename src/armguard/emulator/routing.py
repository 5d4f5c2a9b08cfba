"""ARM URL shapes → what they address. Pure: no store, no HTTP framework.

Both ``/resourceGroups/`` and ``/resourcegroups/`` route (resource-group and deployment SDK
operations use the lowercase literal; compute and network use camelCase).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from armguard.arm.errors import ArmError
from armguard.arm.ids import InvalidResourceId, ResourceId
from armguard.emulator.operations import StatusRoute, match_status_path

__all__ = [
    "ActivityLogRoute",
    "CollectionRoute",
    "ListRoute",
    "ResourceRoute",
    "Route",
    "route",
]

_ACTIVITY_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.insights/eventtypes/management/values$",
    re.I,
)
_BARE_DEPLOYMENTS_RE = re.compile(
    r"^(/subscriptions/[^/]+/resourcegroups/[^/]+)/deployments/", re.I
)
_PROVIDER_LIST_RE = re.compile(r"^(?P<scope>.*)/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)$", re.I)


@dataclass(frozen=True)
class ResourceRoute:
    id: ResourceId


@dataclass(frozen=True)
class ListRoute:
    """``{scope}/resources``, ``/subscriptions/{s}/resourcegroups`` or
    ``{scope}/providers/{ns}/{type}``."""

    scope: ResourceId
    namespace: str | None = None
    type: str | None = None
    groups: bool = False


@dataclass(frozen=True)
class CollectionRoute:
    """``{id}/{name}``: a child collection for GET (subnets, instanceView) or an action for
    POST (start, listKeys, cancel)."""

    parent: ResourceId
    name: str


@dataclass(frozen=True)
class ActivityLogRoute:
    subscription: str


Route = ResourceRoute | ListRoute | CollectionRoute | ActivityLogRoute | StatusRoute


def _parse(text: str) -> ResourceId:
    return ResourceId.parse(text)


@functools.lru_cache(maxsize=4096)
def route(path: str) -> Route:
    """Resolve a request path, or raise a 4xx ArmError.

    Cached: clients hit the same few paths over and over, parsing an ID costs more than the
    rest of a read, and routes are immutable. Refusals are raised afresh every time."""
    # SDKs build ".../Microsoft.Storage//storageAccounts/..." for an empty parent resource path,
    # which ARM accepts; empty segments carry no meaning.
    path = "/" + re.sub(r"/{2,}", "/", path).strip("/")
    # Deployment operations are also addressed without the provider segment.
    path = _BARE_DEPLOYMENTS_RE.sub(r"\1/providers/Microsoft.Resources/deployments/", path)
    if not path.lower().startswith("/subscriptions/"):
        raise ArmError(
            404,
            "InvalidRoute",
            f"The path '{path}' is not an Azure Resource Manager route; paths start with "
            "'/subscriptions/{subscriptionId}'.",
        )
    status = match_status_path(path)
    if status is not None:
        return status
    m = _ACTIVITY_RE.match(path)
    if m:
        return ActivityLogRoute(m.group("sub"))
    try:
        return ResourceRoute(_parse(path))
    except InvalidResourceId as first_error:
        head, _, last = path.rpartition("/")
        try:
            if last.lower() == "resources":
                return ListRoute(_parse(head))
            if last.lower() == "resourcegroups":
                scope = _parse(head)
                if scope.is_subscription:
                    return ListRoute(scope, groups=True)
            m2 = _PROVIDER_LIST_RE.match(path)
            if m2:
                return ListRoute(_parse(m2.group("scope")), m2.group("ns"), m2.group("type"))
            if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", last):
                return CollectionRoute(_parse(head), last)
        except InvalidResourceId as err:
            raise _invalid(err) from None
        raise _invalid(first_error) from None


def _invalid(err: InvalidResourceId) -> ArmError:
    return ArmError(400, "InvalidResourceId", str(err))
