from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armguard.emulator.templates import (
    DeploymentPlan,
    TemplateError,
    plan_deployment,
    unique_string,
)

SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/rg1"
VNET = "Microsoft.Network/virtualNetworks"


def plan(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> DeploymentPlan:
    return plan_deployment(
        template,
        parameters or {},
        subscription=SUB,
        resource_group="rg1",
        resource_group_location="westeurope",
        deployment_name="deploy1",
    )


def fails(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
    with pytest.raises(TemplateError) as info:
        plan(template, parameters)
    err = info.value
    assert err.status == 400
    assert err.code == "InvalidTemplate"
    assert err.body()["error"]["code"] == "InvalidTemplate"
    return err.message


def res(type_: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "apiVersion": "2023-09-01", "name": name, **extra}


def evaluate(expression: str, parameters: dict[str, Any] | None = None, **decls: Any) -> Any:
    """Evaluate one expression through a string output of any type."""
    template = {
        "parameters": decls,
        "outputs": {"v": {"type": "object", "value": {"x": expression}}},
    }
    return plan(template, parameters).outputs["v"]["value"]["x"]


def test_vnet_with_children_plans_ids_bodies_and_order() -> None:
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "prefix": {"type": "string", "defaultValue": "app"},
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
        },
        "variables": {"vnetName": "[concat(parameters('prefix'), '-vnet')]"},
        "resources": [
            res(
                f"{VNET}/subnets",
                "[format('{0}/{1}', variables('vnetName'), 'web')]",
                dependsOn=[f"[resourceId('{VNET}', variables('vnetName'))]"],
                properties={"addressPrefix": "10.0.1.0/24"},
            ),
            res(
                VNET,
                "[variables('vnetName')]",
                location="[parameters('location')]",
                tags={"env": "[toUpper('prod')]"},
                properties={"note": "[[not an expression]"},
                resources=[res("subnets", "db", properties={})],
            ),
        ],
        "outputs": {
            "vnetId": {"type": "string", "value": f"[resourceId('{VNET}', variables('vnetName'))]"}
        },
    }
    p = plan(template, {"prefix": {"value": "web"}})
    ids = [str(r.id) for r in p.resources]
    vnet_id = f"{RG_ID}/providers/{VNET}/web-vnet"
    assert ids == [vnet_id, f"{vnet_id}/subnets/web", f"{vnet_id}/subnets/db"]
    vnet = p.resources[0]
    assert vnet.body == {
        "location": "westeurope",
        "tags": {"env": "PROD"},
        "properties": {"note": "[not an expression]"},
    }
    assert vnet.api_version == "2023-09-01"
    assert vnet.symbolic_name == f"{VNET}/web-vnet"
    assert vnet.depends_on == frozenset()
    assert p.resources[1].symbolic_name == f"{VNET}/subnets/web-vnet/web"
    assert p.resources[1].depends_on == {vnet.id.key}
    # The inline child depends on its parent although it declares nothing.
    assert p.resources[2].depends_on == {vnet.id.key}
    assert p.outputs == {"vnetId": {"type": "String", "value": vnet_id}}
    assert [r.id for r in p.ready(set())] == [vnet.id]
    assert [str(r.id) for r in p.ready({vnet.id.key})] == ids[1:]
    assert p.ready({r.id.key for r in p.resources}) == []


def test_unique_string_matches_arm() -> None:
    # Values ARM itself returns for these inputs.
    assert unique_string("test") == "rbgf3xv4ufgzg"
    assert unique_string("hello", "world") == "a7wkljktk6wne"
    assert unique_string("foo", "bar", "baz") == "xzi4ioaxtmth4"
    assert (
        unique_string("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg")
        == "bmg7c6xu4tw46"
    )
    assert evaluate("[uniqueString('hello', 'world')]") == "a7wkljktk6wne"


def test_resource_id_forms() -> None:
    other = "11111111-1111-1111-1111-111111111111"
    assert evaluate(f"[resourceId('{VNET}', 'v1')]") == f"{RG_ID}/providers/{VNET}/v1"
    assert (
        evaluate(f"[resourceId('{VNET}/subnets', 'v1', 's1')]")
        == f"{RG_ID}/providers/{VNET}/v1/subnets/s1"
    )
    assert (
        evaluate(f"[resourceId('rg2', '{VNET}', 'v1')]")
        == f"/subscriptions/{SUB}/resourceGroups/rg2/providers/{VNET}/v1"
    )
    assert (
        evaluate(f"[resourceId('{other}', 'rg3', '{VNET}', 'v1')]")
        == f"/subscriptions/{other}/resourceGroups/rg3/providers/{VNET}/v1"
    )
    with pytest.raises(TemplateError, match="requires 2 resource name"):
        evaluate(f"[resourceId('{VNET}/subnets', 'v1')]")
    with pytest.raises(TemplateError, match="at least '2' parameter"):
        evaluate(f"[resourceId('{VNET}')]")


def test_scope_functions_and_member_access() -> None:
    assert evaluate("[resourceGroup().name]") == "rg1"
    assert evaluate("[resourceGroup().id]") == RG_ID
    assert evaluate("[resourceGroup().location]") == "westeurope"
    assert evaluate("[subscription().subscriptionId]") == SUB
    assert evaluate("[deployment().name]") == "deploy1"
    obj = {"type": "object", "defaultValue": {"Items": [{"name": "a"}, {"name": "b"}]}}
    assert evaluate("[parameters('o').items[1].name]", o=obj) == "b"
    assert evaluate("[parameters('o')['Items'][0]['name']]", o=obj) == "a"
    with pytest.raises(TemplateError, match="property 'missing' doesn't exist"):
        evaluate("[parameters('o').missing]", o=obj)
    with pytest.raises(TemplateError, match="array index '5' is out of bounds"):
        evaluate("[parameters('o').items[5]]", o=obj)


def test_string_functions() -> None:
    assert evaluate("[format('{0}-{1}-{0}', 'a', 2)]") == "a-2-a"
    assert evaluate("[format('{{literal}} {0,3}|{1,-3}|', 'x', 'y')]") == "{literal}   x|y  |"
    assert evaluate("[concat('a', 'b', string(1))]") == "ab1"
    assert evaluate("[toLower('ABC')]") == "abc"
    assert evaluate("[string(true())]") == "True"
    assert evaluate(
        "[string(parameters('o'))]", o={"type": "object", "defaultValue": {"a": 1}}
    ) == ('{"a":1}')
    assert evaluate("['it''s']") == "it's"
    arrays = {"type": "array", "defaultValue": [1, 2]}
    assert evaluate("[concat(parameters('a'), parameters('a'))]", a=arrays) == [1, 2, 1, 2]
    assert evaluate("[if(equals(length('ab'), 2), 'two', reference('x'))]") == "two"
    guid = evaluate("[guid('a', 'b')]")
    assert guid == evaluate("[guid('a', 'b')]")
    assert guid != evaluate("[guid('a', 'c')]")
    assert guid[14] == "5"  # a name-based (version 5) UUID, as ARM's guid() is


def test_function_errors() -> None:
    with pytest.raises(TemplateError, match="The template function 'foo' is not valid"):
        evaluate("[foo('x')]")
    with pytest.raises(TemplateError, match="The template function 'reference' is not supported"):
        evaluate("[reference('x').properties]")
    with pytest.raises(TemplateError, match="'listKeys' is not supported"):
        evaluate("[listKeys('x', '2020-01-01')]")
    with pytest.raises(TemplateError, match="expects its parameter to be of type 'String'"):
        evaluate("[toLower(1)]")
    with pytest.raises(TemplateError, match="all arrays or all strings"):
        evaluate("[concat('a', parameters('a'))]", a={"type": "array", "defaultValue": []})
    with pytest.raises(TemplateError, match="refers to argument 1"):
        evaluate("[format('{1}', 'a')]")


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("[concat('a', 'b']", "expected ')'"),
        ("[concat('a)]", "is not terminated"),
        ("[concat('a' # 'b')]", "character '#' at position '11' is not expected"),
        ("[concat('a'), 'b']", "expected the end of the expression"),
        ("[1.5]", "only integer literals"),
        ("[]", "expected a function call or a literal"),
    ],
)
def test_expression_syntax_errors(expression: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        evaluate(expression)
    assert fragment in info.value.message
    assert "Unable to process template language expressions" in info.value.message


def test_parameter_errors() -> None:
    decl = {"size": {"type": "int"}}
    assert fails({"parameters": decl}) == (
        "Deployment template validation failed: 'The value for the template parameter 'size' "
        "is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'"
    )
    message = fails({"parameters": decl}, {"size": {"value": "3"}})
    assert "Expected a value of type 'Int', but received a value of type 'String'" in message
    message = fails({"parameters": decl}, {"size": True})
    assert "received a value of type 'Boolean'" in message
    sku = {"sku": {"type": "string", "allowedValues": ["Basic", "Standard"]}}
    message = fails({"parameters": sku}, {"sku": "Premium"})
    assert "The provided value 'Premium' for the template parameter 'sku' is not valid" in message
    assert "not part of the allowed value(s): 'Basic,Standard'" in message
    message = fails({"parameters": sku}, {"sku": "Basic", "extra": 1})
    assert "The template parameters 'extra' in the parameters file are not valid" in message
    message = fails({"outputs": {"o": {"type": "string", "value": "[parameters('x')]"}}})
    assert "The template parameter 'x' is not found." in message
    assert "output 'o'" in message
    message = fails({"parameters": {"n": {"type": "int", "maxValue": 3}}}, {"n": 4})
    assert "less than or equal to '3'" in message
    message = fails({"parameters": {"n": {"type": "number"}}})
    assert "has type 'number'" in message


def test_parameters_file_and_plain_values() -> None:
    template = {
        "parameters": {"a": {"type": "string"}, "b": {"type": "object"}},
        "outputs": {
            "a": {"type": "string", "value": "[parameters('A')]"},
            "b": {"type": "object", "value": "[parameters('b')]"},
        },
    }
    wrapped = {
        "$schema": "x",
        "contentVersion": "1.0.0.0",
        "parameters": {"a": {"value": "x"}, "b": {"value": {"k": 1}}},
    }
    assert plan(template, wrapped).outputs["b"]["value"] == {"k": 1}
    # A plain object value whose keys are not the {"value": ...} wrapper stays as it is.
    p = plan(template, {"a": "y", "b": {"k": 2, "value": 3}})
    assert p.outputs == {
        "a": {"type": "String", "value": "y"},
        "b": {"type": "Object", "value": {"k": 2, "value": 3}},
    }


def test_depends_on_by_name_symbolic_name_and_unknown() -> None:
    resources = [
        res(VNET, "v1"),
        res("Microsoft.Network/networkSecurityGroups", "n1", dependsOn=["v1"]),
        res("Microsoft.Storage/storageAccounts", "s1", dependsOn=[f"{VNET}/v1", "n1"]),
    ]
    p = plan({"resources": resources})
    keys = {r.id.name: r.id.key for r in p.resources}
    by_name = {r.id.name: r for r in p.resources}
    assert by_name["n1"].depends_on == {keys["v1"]}
    assert by_name["s1"].depends_on == {keys["v1"], keys["n1"]}
    message = fails({"resources": [res(VNET, "v1", dependsOn=["ghost"])]})
    assert message.startswith(
        f"Deployment template validation failed: 'The template resource '{VNET}/v1' reference "
        "to 'ghost' is not valid"
    )
    twins = [res(VNET, "x"), res("Microsoft.Network/networkSecurityGroups", "x")]
    message = fails({"resources": [*twins, res(VNET, "y", dependsOn=["x"])]})
    assert "is ambiguous" in message


def test_circular_dependency_is_detected() -> None:
    resources = [
        res(VNET, "a", dependsOn=["c"]),
        res(VNET, "b", dependsOn=["a"]),
        res(VNET, "c", dependsOn=["b"]),
    ]
    message = fails({"resources": resources})
    assert message.startswith(
        "Deployment template validation failed: 'Circular dependency detected on resource: "
    )
    for name in ("a", "b", "c"):
        assert f"{VNET}/{name}" in message
    assert "Circular dependency" in fails({"resources": [res(VNET, "a", dependsOn=["a"])]})


def test_structural_errors() -> None:
    assert "incorrect segment lengths" in fails({"resources": [res(f"{VNET}/subnets", "s1")]})
    assert "defined multiple times" in fails({"resources": [res(VNET, "a"), res(VNET, "A")]})
    missing_api = {"type": VNET, "name": "a"}
    assert "'apiVersion' not found" in fails({"resources": [missing_api]})
    assert "unsupported top-level properties: 'resource'" in fails({"resource": []})
    assert "languageVersion 2.0" in fails({"resources": {"a": res(VNET, "a")}})
    assert "character ARM does not allow" in fails({"resources": [res(VNET, "a?b")]})
    looped = {"subnets": [], "copy": [{"name": "subnets", "count": 2, "input": {"name": "x"}}]}
    message = fails({"resources": [res(VNET, "a", properties=looped)]})
    assert "'copy' loop inside its properties" in message


def test_condition_drops_resource_and_keeps_transitive_order() -> None:
    resources = [
        res(VNET, "a"),
        res(VNET, "b", condition="[equals(parameters('withB'), 'yes')]", dependsOn=["a"]),
        res(VNET, "c", dependsOn=["b"]),
    ]
    template = {"parameters": {"withB": {"type": "string"}}, "resources": resources}
    p = plan(template, {"withB": "no"})
    assert [r.id.name for r in p.resources] == ["a", "c"]
    assert p.resources[1].depends_on == {p.resources[0].id.key}
    p = plan(template, {"withB": "yes"})
    assert [r.id.name for r in p.resources] == ["a", "b", "c"]
    bad = [res(VNET, "a", condition="[string('yes')]")]
    assert "must be a Boolean" in fails({"resources": bad})


def test_copy_loop_instances_and_dependencies() -> None:
    template = {
        "parameters": {"count": {"type": "int", "defaultValue": 3}},
        "resources": [
            res(
                VNET,
                "[concat('v', copyIndex(1))]",
                copy={"name": "vnets", "count": "[parameters('count')]"},
                properties={"index": "[copyIndex()]"},
            ),
            res("Microsoft.Network/networkSecurityGroups", "nsg", dependsOn=["vnets"]),
            res(
                "Microsoft.Storage/storageAccounts",
                "[format('st{0}', copyIndex())]",
                copy={"name": "st", "count": 4, "mode": "serial", "batchSize": 2},
            ),
        ],
    }
    p = plan(template)
    by_name = {r.id.name: r for r in p.resources}
    assert [by_name[f"v{i}"].body["properties"]["index"] for i in (1, 2, 3)] == [0, 1, 2]
    assert by_name["nsg"].depends_on == {by_name[f"v{i}"].id.key for i in (1, 2, 3)}
    assert by_name["st0"].depends_on == frozenset()
    assert by_name["st1"].depends_on == frozenset()
    assert by_name["st2"].depends_on == {by_name["st0"].id.key, by_name["st1"].id.key}
    assert by_name["st3"].depends_on == {by_name["st0"].id.key, by_name["st1"].id.key}
    assert "copyIndex" in fails({"resources": [res(VNET, "[string(copyIndex())]")]})
    bad_count = [res(VNET, "[string(copyIndex())]", copy={"name": "x", "count": "3"})]
    assert "must be an integer from 0 to 800" in fails({"resources": bad_count})


def test_scope_property_makes_extension_resource() -> None:
    lock = res(
        "Microsoft.Authorization/locks",
        "nodelete",
        scope=f"[resourceId('{VNET}', 'v1')]",
        properties={"level": "CanNotDelete"},
    )
    p = plan({"resources": [lock, res(VNET, "v1")]})
    assert [r.id.name for r in p.resources] == ["v1", "nodelete"]
    lock_planned = p.resources[1]
    assert str(lock_planned.id) == (
        f"{RG_ID}/providers/{VNET}/v1/providers/Microsoft.Authorization/locks/nodelete"
    )
    assert lock_planned.id.is_extension
    assert "scope" not in lock_planned.body
    assert lock_planned.depends_on == {p.resources[0].id.key}


def test_output_type_is_checked_and_condition_honoured() -> None:
    outputs = {
        "n": {"type": "int", "value": "[length('abc')]"},
        "skipped": {"type": "string", "condition": "[false()]", "value": "[foo()]"},
    }
    assert plan({"outputs": outputs}).outputs == {"n": {"type": "Int", "value": 3}}
    message = fails({"outputs": {"n": {"type": "int", "value": "three"}}})
    assert "declared as 'Int'" in message


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(min_value=1, max_value=25))
    # Edges only point to lower indices, so the graph is acyclic; the template order is shuffled.
    return [
        draw(st.lists(st.integers(min_value=0, max_value=i - 1), max_size=4, unique=True))
        if i
        else []
        for i in range(n)
    ]


@settings(max_examples=60, deadline=None)
@given(dags(), st.randoms(use_true_random=False), st.sampled_from(["id", "name", "symbolic"]))
def test_plan_order_and_ready_respect_random_dags(
    deps: list[list[int]], rnd: Any, style: str
) -> None:
    def ref(j: int) -> str:
        if style == "id":
            return f"[resourceId('{VNET}', 'r{j}')]"
        return f"r{j}" if style == "name" else f"{VNET}/r{j}"

    order = list(range(len(deps)))
    rnd.shuffle(order)
    resources = [res(VNET, f"r{i}", dependsOn=[ref(j) for j in deps[i]]) for i in order]
    p = plan({"resources": resources})
    key = {r.id.name: r.id.key for r in p.resources}
    position = {r.id.name: n for n, r in enumerate(p.resources)}
    for i, wanted in enumerate(deps):
        planned = p.resources[position[f"r{i}"]]
        assert planned.depends_on == {key[f"r{j}"] for j in wanted}
        for j in wanted:
            assert position[f"r{j}"] < position[f"r{i}"]
    done: set[str] = set()
    seen: list[str] = []
    while True:
        wave = p.ready(done)
        if not wave:
            break
        for r in wave:
            assert r.depends_on <= done
        # Finish one ready resource at a time, in an arbitrary order, as the engine may.
        pick = rnd.choice(wave)
        seen.append(pick.id.key)
        done.add(pick.id.key)
    assert sorted(seen) == sorted(key.values())
    assert len(seen) == len(set(seen))


def _nested(function: str, depth: int) -> str:
    return "[" + f"{function}(" * depth + "'a'" + ")" * depth + "]"


def test_deeply_nested_expressions_are_refused_naming_the_limit() -> None:
    assert evaluate(_nested("concat", 60)) == "a"
    message = fails({"resources": [res("Microsoft.Web/sites", _nested("concat", 2000))]})
    assert "deeper than the limit of 64 levels" in message
    assert len(message) < 1000, "the message shows the start of the expression, not all of it"
    indexes = "[parameters('p')" + "[0]" * 2000 + "]"
    assert "limit of 64" in fails({"outputs": {"o": {"type": "string", "value": indexes}}})


def test_long_variable_chains_are_refused_naming_the_limit() -> None:
    chain: dict[str, Any] = {f"v{i}": f"[variables('v{i + 1}')]" for i in range(500)}
    chain["v500"] = "end"
    template = {
        "variables": chain,
        "outputs": {"o": {"type": "string", "value": "[variables('v0')]"}},
    }
    assert "limit of 128 levels" in fails(template)
    nested: dict[str, Any] = {f"v{i}": [f"[variables('v{i + 1}')]"] for i in range(500)}
    nested["v500"] = "end"
    template = {
        "variables": nested,
        "outputs": {"o": {"type": "array", "value": "[variables('v0')]"}},
    }
    assert "limit of 128 levels" in fails(template)
    short = {f"v{i}": f"[variables('v{i + 1}')]" for i in range(20)}
    short["v20"] = "end"
    assert (
        plan(
            {"variables": short, "outputs": {"o": {"type": "string", "value": "[variables('v0')]"}}}
        ).outputs["o"]["value"]
        == "end"
    )


def test_more_than_800_resources_are_refused() -> None:
    loop = {"name": "sites", "count": 800}
    sites = res("Microsoft.Web/sites", "[concat('site', copyIndex())]", copy=loop)
    assert len(plan({"resources": [sites]}).resources) == 800
    extra = res("Microsoft.Web/sites", "one-more")
    assert "limit of 800 resources" in fails({"resources": [sites, extra]})
