"""The Azure SDK for JavaScript through ``armguard proxy --tls --emulator --lost-updates
merge``, unmodified: ten subnets created at once on one VNet, a resize and a start of one VM at
once, a full-body PUT after a tag normalizer's write it never read. Direct, each of these hands
the client a 409 or loses the tag (``test_js_sdk.py`` shows the 409); through the proxy none
does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armguard.testing import make_token

sys.path.insert(0, str(Path(__file__).resolve().parent))
from js_helpers import installed, require_node, run_node

SCRIPT = "proxy_checks.mjs"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node, npm = require_node()
    project = installed(npm, SCRIPT)
    certs = tmp_path_factory.mktemp("proxy-certs")
    events = certs / "events.jsonl"
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "proxy",
            "--emulator",
            "--time-scale",
            "0.02",
            "--tls",
            "--cert-dir",
            str(certs),
            "--lost-updates",
            "merge",
            "--events",
            str(events),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        assert "listening on https://" in line, line + (proxy.stderr.read() if proxy.stderr else "")
        endpoint = line.split(" listening on ")[1].split()[0]
        env = {
            "ARM_ENDPOINT": endpoint,
            "ARM_TOKEN": make_token("pipeline@example.com"),
            "ARM_TOKEN_2": make_token("normalizer@example.com"),
            "NODE_EXTRA_CA_CERTS": str(certs / "ca.pem"),
        }
        yield run_node(node, project, SCRIPT, env)
    finally:
        proxy.terminate()
        proxy.communicate(timeout=30)


def test_setup_through_the_proxy(results: dict[str, Any]) -> None:
    assert results["setup"] == {"ok": True, "value": "ok"}


def test_ten_subnets_at_once_are_all_created(results: dict[str, Any]) -> None:
    assert results["subnets_at_once"] == {"ok": True, "value": {"refused": [], "listed": 10}}


def test_a_start_during_a_resize_waits_its_turn(results: dict[str, Any]) -> None:
    step = results["resize_during_power_action"]
    assert step["ok"], step
    assert step["value"]["resize"] == "fulfilled"
    assert step["value"]["start"] == "fulfilled"
    assert step["value"]["size"] == "Standard_B2s"
    assert step["value"]["power"] == ["PowerState/running"]


def test_a_blind_put_keeps_the_normalizers_tag(results: dict[str, Any]) -> None:
    step = results["blind_put_after_a_normalizer"]
    assert step["ok"], step
    assert step["value"]["tags"] == {"owner": "platform", "env": "prod"}
    assert step["value"]["subnets"] == 10, "the merge kept the subnets too"
