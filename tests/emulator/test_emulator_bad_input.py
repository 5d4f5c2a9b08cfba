"""Bad input gets ARM-shaped 4xx answers, never a 500; the catch-all is a last resort."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from arm_helpers import NET, RG, SUB, VNET, Arm, api_version_for

from armguard.emulator.core import Emulator
from armguard.testing import EmulatorHandle, emulator, make_token

AUTH = {"Authorization": f"Bearer {make_token('alice@example.com')}"}
JSON_TYPE = {"Content-Type": "application/json"}
SITE = f"{RG}/providers/Microsoft.Web/sites/s"
NIC = f"{NET}/networkInterfaces/nic1"
LOCK = f"{RG}/providers/Microsoft.Authorization/locks/l1"
DEPLOYMENT = f"{RG}/providers/Microsoft.Resources/deployments/d1"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _vnet(*subnets: Any) -> bytes:
    return _json({"location": "eastus", "properties": {"subnets": list(subnets)}})


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def _nested_concat(depth: int) -> bytes:
    expression = "[" + "concat(" * depth + "'a'" + ")" * depth + "]"
    resource = {"type": "Microsoft.Web/sites", "apiVersion": "2022-03-01", "name": expression}
    return _json({"properties": {"mode": "Incremental", "template": {"resources": [resource]}}})


# Bodies that deserialise as JSON but have the wrong shape, or that break a reader: each must
# be a 400 naming the problem, not a 500 and not a silently different resource.
_SHAPES: list[tuple[str, str, bytes, int, str]] = [
    ("PUT", VNET, _vnet({"name": "a", "properties": "x"}), 400, "InvalidRequestContent"),
    ("PUT", VNET, _vnet({"name": "a/b"}), 400, "InvalidResourceName"),
    ("PUT", VNET, _vnet({"name": "a"}, {"name": "A"}), 400, "DuplicateResourceName"),
    ("PUT", VNET, _vnet({"properties": {}}), 400, "InvalidRequestContent"),
    ("PUT", VNET, _vnet(None), 400, "InvalidRequestContent"),
    (
        "PUT",
        NIC,
        _json(
            {
                "location": "eastus",
                "properties": {"ipConfigurations": [{"name": "c", "properties": "y"}]},
            }
        ),
        400,
        "InvalidRequestContent",
    ),
    ("PUT", SITE, _json({"location": "eastus", "tags": "x"}), 400, "InvalidRequestContent"),
    ("PUT", SITE, _json({"location": "eastus", "tags": {"a": 1}}), 400, "InvalidRequestContent"),
    (
        "PUT",
        SITE,
        _json({"location": "eastus", "tags": {"a/b": "1"}}),
        400,
        "InvalidTagNameCharacters",
    ),
    ("PUT", SITE, _json({"location": 5}), 400, "InvalidRequestContent"),
    ("PUT", f"{VNET}/subnets/s1", _json({"tags": "xyz"}), 400, "InvalidRequestContent"),
    (
        "PUT",
        LOCK,
        _json({"properties": {"level": "CanNotDelete", "owners": "x"}}),
        400,
        "InvalidRequestContent",
    ),
    ("PUT", RG, _deep(5000), 400, "InvalidRequestContent"),
    (
        "PUT",
        SITE,
        b'{"location": "eastus", "properties": ' + _deep_object(100) + b"}",
        400,
        "InvalidRequestContent",
    ),
    ("PUT", SITE, b'{"location": "eastus", "tags": {"a": NaN}}', 400, "InvalidRequestContent"),
    ("PUT", SITE, b'{"location": "eastus", "n": 1e400}', 400, "InvalidRequestContent"),
    (
        "PUT",
        SITE,
        b'{"location": "eastus", "n": ' + b"9" * 5000 + b"}",
        400,
        "InvalidRequestContent",
    ),
    ("PUT", DEPLOYMENT, _nested_concat(2000), 400, "InvalidTemplate"),
]


def _assert_arm_4xx(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


@pytest.mark.parametrize(
    "case",
    [
        ("GET", f"{SUB}/resourceGroups/bad<name>", None, {}, 400, "InvalidResourceId"),
        ("GET", f"{SUB}/resourceGroups/rg1/providers/bad/x/y", None, {}, 400, "InvalidResourceId"),
        ("GET", "/not/arm", None, {}, 404, "InvalidRoute"),
        ("GET", f"{RG}/providers/Microsoft.Web/sites/a:b", None, {}, 400, "InvalidResourceId"),
        (
            "PUT",
            RG,
            b"{not json",
            {"Content-Type": "application/json"},
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            RG,
            b'"a string"',
            {"Content-Type": "application/json"},
            400,
            "InvalidRequestContent",
        ),
        ("PUT", RG, b"<xml/>", {"Content-Type": "application/xml"}, 415, "UnsupportedMediaType"),
        (
            "PUT",
            RG,
            b"\xff\xfe",
            {"Content-Type": "application/json"},
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            RG,
            b"x" * (4 * 1024 * 1024 + 1),
            {"Content-Type": "application/json"},
            413,
            "RequestEntityTooLarge",
        ),
        ("TRACE", RG, None, {}, 405, "MethodNotAllowed"),
        ("POST", RG, None, {}, 405, "MethodNotAllowed"),
        (
            "PUT",
            f"{RG}/providers/Microsoft.Web/sites/s",
            b'{"properties": 5, "location": "x"}',
            {"Content-Type": "application/json"},
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            f"{RG}/providers/Microsoft.Storage/storageAccounts/UPPER",
            b'{"location": "eastus"}',
            {"Content-Type": "application/json"},
            400,
            "AccountNameInvalid",
        ),
        *[(m, p, b, {"Content-Type": "application/json"}, st, c) for m, p, b, st, c in _SHAPES],
    ],
)
def test_bad_requests_are_refused_in_arm_shape(
    served: EmulatorHandle,
    arm: Arm,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, str, bytes | None, dict[str, str], int, str],
) -> None:
    method, path, content, headers, status, code = case
    arm.put(RG, {"location": "eastus"})
    with caplog.at_level(logging.ERROR, logger="armguard.emulator"):
        response = httpx.request(
            method,
            f"{served.base_url}{path}?api-version={api_version_for(path)}",
            content=content,
            headers={**AUTH, **headers},
            timeout=30,
        )
    if code:
        _assert_arm_4xx(response, status, code)
    else:
        assert response.status_code == status
    assert not caplog.records, "a known bad input reached the catch-all"
    # The emulator keeps serving.
    assert arm.get(RG).status_code == 200


def test_unexpected_exceptions_become_500_arm_errors(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Emulator):
        def dispatch(self, req, op_fault=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    from armguard.emulator.server import serve

    server = serve(Broken())
    try:
        with caplog.at_level(logging.ERROR, logger="armguard.emulator"):
            response = httpx.get(
                f"{server.base_url}{RG}?api-version={api_version_for(RG)}", headers=AUTH
            )
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "InternalServerError"
        assert "boom" not in response.text
        assert any("boom" in (r.exc_text or "") for r in caplog.records)
    finally:
        server.stop()


def test_admin_api_rejects_bad_bodies(arm: Arm) -> None:
    assert arm.http.post("/_armguard/seed", json={"seed": "x"}).status_code == 400
    assert arm.http.post("/_armguard/faults", json={"effect": {"status": "bad"}}).status_code == 400
    assert arm.http.post("/_armguard/faults", content=b"{").status_code == 400
    assert arm.http.delete("/_armguard/faults/none").status_code == 404
    assert arm.http.post("/_armguard/clock/advance", json={"seconds": -1}).status_code == 400


def test_clock_advance_needs_a_manual_clock() -> None:
    from armguard.clock import SystemClock

    with emulator(clock=SystemClock()) as served:
        response = httpx.post(f"{served.base_url}/_armguard/clock/advance", json={"seconds": 1})
        assert response.status_code == 409


def test_unknown_admin_routes_are_arm_shaped(arm: Arm) -> None:
    missing = arm.http.get("/_armguard/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotFound"
    wrong = arm.http.delete("/_armguard/health")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "MethodNotAllowed"


def test_a_refused_tag_set_leaves_the_tags_api_working(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    assert arm.put(SITE, {"location": "eastus", "tags": {"a": "1"}}).status_code == 201
    served.advance(10)
    tags = f"{SITE}/providers/Microsoft.Resources/tags/default"
    refused = arm.patch(SITE, {"tags": "x"})
    assert refused.status_code == 400, refused.text
    assert arm.get(tags).json()["properties"]["tags"] == {"a": "1"}
    merged = arm.patch(tags, {"operation": "Merge", "properties": {"tags": {"b": "2"}}})
    assert merged.status_code == 200, merged.text
    assert arm.get(SITE).json()["tags"] == {"a": "1", "b": "2"}


def test_a_refused_subnet_list_changes_nothing(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    assert (
        arm.put(
            VNET, {"location": "eastus", "properties": {"subnets": [{"name": "a"}]}}
        ).status_code
        == 201
    )
    served.advance(10)
    refused = arm.put(
        VNET, {"location": "eastus", "properties": {"subnets": [{"name": "a"}, {"name": "x/y"}]}}
    )
    assert refused.status_code == 400, refused.text
    assert "x/y" in refused.json()["error"]["message"]
    assert [s["name"] for s in arm.get(VNET).json()["properties"]["subnets"]] == ["a"]
