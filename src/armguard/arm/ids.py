"""ARM resource IDs: parse, format, compare, walk.

ARM compares every name segment case-insensitively but must return the casing the caller last
supplied, so a :class:`ResourceId` keeps the caller's text and compares on a folded ``key``.

Grammar (mirrors ``azure.mgmt.core.tools``, which the SDKs use)::

    /subscriptions/{sub}
    /subscriptions/{sub}/resourceGroups/{rg}
    {scope}/providers/{Namespace}/{type}/{name}[/{childType}/{childName}]...

where ``{scope}`` is a subscription, a resource group or any resource, so extension resources
(locks, tags) nest by switching namespace after another ``/providers/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["InvalidResourceId", "ProviderLevel", "ResourceId", "parse_resource_id"]

# Names: ARM's generic rule (1-260 characters, none of < > % & : \ ? / or control characters).
_NAME_RE = re.compile(r"^[^<>%&:\\?/\x00-\x1f]{1,260}$")
# Resource groups: letters, digits, - _ ( ) . ; up to 90; no trailing period. ARM accepts Unicode
# letters and digits, which \w covers.
_RG_RE = re.compile(r"^[-\w._()]{1,90}$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$")
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


class InvalidResourceId(ValueError):
    """The text is not an ARM resource ID. The message says which part is wrong."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"The resource ID '{text}' is not valid: {reason}.")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class ProviderLevel:
    """One ``/providers/{Namespace}/{type}/{name}[/{childType}/{childName}]...`` run."""

    namespace: str
    pairs: tuple[tuple[str, str], ...]

    def type_path(self) -> str:
        return "/".join([self.namespace, *(t for t, _ in self.pairs)])

    def format(self) -> str:
        inner = "".join(f"/{t}/{n}" for t, n in self.pairs)
        return f"/providers/{self.namespace}{inner}"


@dataclass(frozen=True)
class ResourceId:
    """A subscription, resource group or resource, with the caller's casing kept.

    Equality and hashing use :attr:`key`, the case-folded canonical text, because ARM treats
    ``/resourcegroups/RG`` and ``/resourceGroups/rg`` as the same resource.
    """

    subscription: str
    resource_group: str | None = None
    levels: tuple[ProviderLevel, ...] = ()
    key: str = field(init=False, repr=False, compare=True, hash=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.format().lower())

    # Equality on the folded key only: casing is presentation, not identity.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceId) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.format()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        return parse_resource_id(text)

    @classmethod
    def subscription_id(cls, subscription: str) -> ResourceId:
        return cls(subscription)

    def child(self, type_: str, name: str, namespace: str | None = None) -> ResourceId:
        """The ID of a child of this resource, or of a resource under this scope.

        With ``namespace`` the child is a new provider level (a top-level resource under a
        group, or an extension resource under any scope); without it the pair is appended to
        the last level (a nested child such as a subnet).
        """
        if namespace is not None or not self.levels:
            if namespace is None:
                raise InvalidResourceId(self.format(), "a namespace is needed below a scope")
            return ResourceId(
                self.subscription,
                self.resource_group,
                (*self.levels, ProviderLevel(namespace, ((type_, name),))),
            )
        last = self.levels[-1]
        return ResourceId(
            self.subscription,
            self.resource_group,
            (*self.levels[:-1], ProviderLevel(last.namespace, (*last.pairs, (type_, name)))),
        )

    # -- shape --------------------------------------------------------------------------

    @property
    def is_subscription(self) -> bool:
        return self.resource_group is None and not self.levels

    @property
    def is_resource_group(self) -> bool:
        return self.resource_group is not None and not self.levels

    @property
    def is_resource(self) -> bool:
        return bool(self.levels)

    @property
    def is_extension(self) -> bool:
        """A resource that extends another scope (a lock on a VM, tags on a group)."""
        if not self.levels:
            return False
        return len(self.levels) > 1 or self.resource_group is None

    @property
    def is_child(self) -> bool:
        """A nested resource within its provider level (a subnet of a VNet)."""
        return bool(self.levels) and len(self.levels[-1].pairs) > 1

    @property
    def namespace(self) -> str | None:
        return self.levels[-1].namespace if self.levels else None

    @property
    def type(self) -> str:
        """ARM's ``type``: ``Microsoft.Network/virtualNetworks/subnets``; scopes get pseudo types."""
        if self.levels:
            return self.levels[-1].type_path()
        if self.resource_group is not None:
            return "Microsoft.Resources/resourceGroups"
        return "Microsoft.Resources/subscriptions"

    @property
    def name(self) -> str:
        if self.levels:
            return self.levels[-1].pairs[-1][1]
        if self.resource_group is not None:
            return self.resource_group
        return self.subscription

    # -- walking ------------------------------------------------------------------------

    @property
    def parent(self) -> ResourceId | None:
        """The enclosing resource or scope: subnet → VNet → group → subscription → None.

        An extension resource's parent is the scope it extends.
        """
        if self.levels:
            last = self.levels[-1]
            if len(last.pairs) > 1:
                return ResourceId(
                    self.subscription,
                    self.resource_group,
                    (*self.levels[:-1], ProviderLevel(last.namespace, last.pairs[:-1])),
                )
            return ResourceId(self.subscription, self.resource_group, self.levels[:-1])
        if self.resource_group is not None:
            return ResourceId(self.subscription)
        return None

    @property
    def scope(self) -> ResourceId:
        """The scope an extension resource extends; for other IDs, the enclosing group or sub."""
        if self.levels:
            return ResourceId(self.subscription, self.resource_group, self.levels[:-1])
        return self.parent or self

    @property
    def top_level(self) -> ResourceId:
        """The top-level resource of the last provider level (VNet for a subnet); self otherwise."""
        if not self.is_child:
            return self
        last = self.levels[-1]
        return ResourceId(
            self.subscription,
            self.resource_group,
            (*self.levels[:-1], ProviderLevel(last.namespace, last.pairs[:1])),
        )

    def ancestors(self) -> Iterator[ResourceId]:
        """Every enclosing ID, nearest first, ending with the subscription."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def is_within(self, other: ResourceId) -> bool:
        """True if ``other`` is this ID or one of its ancestors (the lock inheritance rule)."""
        return self.key == other.key or self.key.startswith(other.key + "/")

    @property
    def resource_group_id(self) -> ResourceId | None:
        if self.resource_group is None:
            return None
        return ResourceId(self.subscription, self.resource_group)

    # -- formatting ---------------------------------------------------------------------

    def format(self) -> str:
        out = f"/subscriptions/{self.subscription}"
        if self.resource_group is not None:
            out += f"/resourceGroups/{self.resource_group}"
        return out + "".join(level.format() for level in self.levels)


def _check_name(text: str, name: str, what: str) -> None:
    if not _NAME_RE.match(name):
        raise InvalidResourceId(text, f"{what} '{name}' has a character ARM does not allow")


def parse_resource_id(text: str) -> ResourceId:
    """Parse an ARM resource ID, or raise :class:`InvalidResourceId` naming the bad part.

    Accepts either casing of ``resourceGroups`` and of ``providers``, and a trailing slash.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidResourceId(str(text), "it is empty")
    raw = text.strip()
    if not raw.startswith("/"):
        raise InvalidResourceId(text, "it must start with '/subscriptions/'")
    segments = raw.rstrip("/").split("/")[1:]
    if any(s == "" for s in segments):
        raise InvalidResourceId(text, "it has an empty segment ('//')")
    if len(segments) < 2 or segments[0].lower() != "subscriptions":
        raise InvalidResourceId(text, "it must start with '/subscriptions/{subscriptionId}'")
    subscription = segments[1]
    _check_name(text, subscription, "subscription")
    rest = segments[2:]
    resource_group: str | None = None
    if rest and rest[0].lower() == "resourcegroups":
        if len(rest) < 2:
            raise InvalidResourceId(text, "'resourceGroups' needs a name")
        resource_group = rest[1]
        if not _RG_RE.match(resource_group) or resource_group.endswith("."):
            raise InvalidResourceId(
                text,
                f"resource group name '{resource_group}' must be 1-90 letters, digits, "
                "'-', '_', '(', ')' or '.', not ending in '.'",
            )
        rest = rest[2:]
    levels: list[ProviderLevel] = []
    while rest:
        if rest[0].lower() != "providers":
            if not levels:
                raise InvalidResourceId(text, f"expected 'providers' but found '{rest[0]}'")
            # A nested child continues the current provider level.
            if len(rest) < 2:
                raise InvalidResourceId(text, f"type '{rest[0]}' needs a name")
            type_, name = rest[0], rest[1]
            if not _TYPE_RE.match(type_):
                raise InvalidResourceId(text, f"'{type_}' is not a resource type")
            _check_name(text, name, "name")
            last = levels[-1]
            levels[-1] = ProviderLevel(last.namespace, (*last.pairs, (type_, name)))
            rest = rest[2:]
            continue
        if len(rest) < 4:
            raise InvalidResourceId(text, "'providers' needs a namespace, a type and a name")
        namespace, type_, name = rest[1], rest[2], rest[3]
        if not _NAMESPACE_RE.match(namespace):
            raise InvalidResourceId(text, f"'{namespace}' is not a provider namespace")
        if not _TYPE_RE.match(type_):
            raise InvalidResourceId(text, f"'{type_}' is not a resource type")
        _check_name(text, name, "name")
        levels.append(ProviderLevel(namespace, ((type_, name),)))
        rest = rest[4:]
    return ResourceId(subscription, resource_group, tuple(levels))
