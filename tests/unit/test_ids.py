from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id

SUB = "00000000-0000-0000-0000-000000000001"
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/Prod-RG/providers/Microsoft.Network/"
    "virtualNetworks/VNet1/subnets/App"
)


def test_subnet_shape_and_walk() -> None:
    rid = parse_resource_id(SUBNET)
    assert rid.type == "Microsoft.Network/virtualNetworks/subnets"
    assert rid.name == "App"
    assert rid.is_child
    assert not rid.is_extension
    assert str(rid.parent) == SUBNET.rsplit("/subnets/", 1)[0]
    assert rid.top_level == rid.parent
    chain = [a.type for a in rid.ancestors()]
    assert chain == [
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Resources/resourceGroups",
        "Microsoft.Resources/subscriptions",
    ]


def test_case_insensitive_identity_keeps_casing() -> None:
    a = parse_resource_id(SUBNET)
    b = parse_resource_id(SUBNET.lower().replace("resourcegroups", "resourcegroups"))
    assert a == b
    assert hash(a) == hash(b)
    assert str(a) == SUBNET
    assert "Prod-RG" in str(a)


def test_extension_resource_on_a_vm() -> None:
    text = (
        f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
        "/providers/Microsoft.Authorization/locks/nodelete"
    )
    rid = parse_resource_id(text)
    assert rid.is_extension
    assert rid.type == "Microsoft.Authorization/locks"
    assert rid.scope.type == "Microsoft.Compute/virtualMachines"
    assert rid.parent == rid.scope
    assert rid.is_within(rid.scope)
    assert rid.is_within(rid.scope.resource_group_id)  # type: ignore[arg-type]


def test_tags_on_a_subscription() -> None:
    rid = parse_resource_id(f"/subscriptions/{SUB}/providers/Microsoft.Resources/tags/default")
    assert rid.is_extension
    assert rid.scope.is_subscription


def test_is_within_does_not_match_name_prefixes() -> None:
    rg1 = parse_resource_id(f"/subscriptions/{SUB}/resourceGroups/rg1")
    rg10 = parse_resource_id(f"/subscriptions/{SUB}/resourceGroups/rg10")
    assert not rg10.is_within(rg1)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("subscriptions/x", "start with"),
        ("/subscriptions", "subscriptionId"),
        (f"/subscriptions/{SUB}//resourceGroups/x", "empty segment"),
        (f"/subscriptions/{SUB}/resourceGroups", "needs a name"),
        (f"/subscriptions/{SUB}/resourceGroups/bad.", "resource group name"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/foo/bar", "expected 'providers'"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network", "needs a"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers/nonamespace/t/n", "namespace"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/vnets/a%b",
            "character",
        ),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/vnets/a/sub", "name"),
    ],
)
def test_invalid_ids_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidResourceId) as info:
        parse_resource_id(text)
    assert fragment in str(info.value)


_names = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_.", max_codepoint=0x24F
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: not s.endswith("."))
_types = st.from_regex(r"[a-z][A-Za-z0-9]{0,12}", fullmatch=True)


@given(
    sub=_names,
    rg=_names,
    ns=st.from_regex(r"Microsoft\.[A-Z][a-zA-Z]{1,10}", fullmatch=True),
    pairs=st.lists(st.tuples(_types, _names), min_size=1, max_size=3),
)
def test_format_parse_round_trip(sub: str, rg: str, ns: str, pairs: list[tuple[str, str]]) -> None:
    rid = ResourceId(sub, rg).child(pairs[0][0], pairs[0][1], namespace=ns)
    for t, n in pairs[1:]:
        rid = rid.child(t, n)
    text = rid.format()
    again = parse_resource_id(text)
    assert again.format() == text
    upper = text.upper()
    if upper.lower() == text.lower():  # ß → SS is not a case change ARM would make
        assert again == parse_resource_id(upper.replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    assert len(list(again.ancestors())) == len(pairs) + 1


@given(st.text(max_size=80))
def test_parse_never_raises_anything_but_invalid_resource_id(text: str) -> None:
    try:
        rid = parse_resource_id(text)
    except InvalidResourceId:
        return
    assert rid.format().lower() == ("/" + "/".join(text.strip().strip("/").split("/"))).lower()
