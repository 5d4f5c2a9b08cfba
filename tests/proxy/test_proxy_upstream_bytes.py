"""What reaches the upstream is what the caller sent, and what comes back reaches the caller:
escaped paths byte for byte, the caller's own headers and no client's defaults added, and a
compressed answer intact. Checked against a real server that records what it was sent."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from armguard.proxy.guard import Mode
from armguard.proxy.server import RunningProxy
from armguard.testing import make_token

AUTH = {"Authorization": f"Bearer {make_token('user@example.com')}"}
GROUPS = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups"


class Recorder:
    """An upstream that answers every request with what it received, as JSON; gzipped when
    the path ends in ``/gz`` whatever the request asked for."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = {
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [(k.decode(), v.decode()) for k, v in scope["headers"]],
            "body": body.decode("utf-8", "replace"),
        }
        self.seen.append(record)
        payload = json.dumps({"id": record["raw_path"], "echo": record}).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        if record["raw_path"].endswith("/gz"):
            payload = gzip.compress(payload)
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    app = Recorder()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield app, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_escaped_paths_and_queries_reach_the_upstream_byte_for_byte(
    recorder: tuple[Recorder, str], make_proxy: Any
) -> None:
    app, url = recorder
    proxy: RunningProxy = make_proxy(Mode.OFF, upstream=url)
    path = f"{GROUPS}/rg%20one/providers/Microsoft.Web/sites/a%2Fb"
    query = "api-version=2024-04-01&$filter=name%20eq%20%27x%27"
    r = httpx.get(f"{proxy.base_url}{path}?{query}", headers=AUTH)
    assert r.status_code == 200, r.text
    assert app.seen[-1]["raw_path"] == path
    assert app.seen[-1]["query"] == query


def test_the_callers_headers_go_upstream_and_no_client_defaults_are_added(
    recorder: tuple[Recorder, str], make_proxy: Any
) -> None:
    app, url = recorder
    proxy: RunningProxy = make_proxy(Mode.OFF, upstream=url)
    r = httpx.post(
        f"{proxy.base_url}{GROUPS}/rg/providers/Microsoft.Compute/virtualMachines/vm/"
        "listInstanceView?api-version=2024-07-01",
        content=b"",
        headers={**AUTH, "User-Agent": "terraform-provider-azurerm/4.0", "Accept": "*/*"},
    )
    assert r.status_code == 200, r.text
    sent = {k.lower(): v for k, v in app.seen[-1]["headers"]}
    assert sent["user-agent"] == "terraform-provider-azurerm/4.0"
    assert sent["authorization"] == AUTH["Authorization"]
    assert "accept-encoding" not in sent  # the proxy reads bodies; it asks for them plain
    assert "content-type" not in sent  # none was sent, so none is guessed


def test_a_compressed_answer_reaches_the_caller_intact(
    recorder: tuple[Recorder, str], make_proxy: Any
) -> None:
    _, url = recorder
    proxy: RunningProxy = make_proxy(Mode.WARN, upstream=url)
    r = httpx.get(f"{proxy.base_url}{GROUPS}/rg/gz?api-version=2024-03-01", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.json()["echo"]["raw_path"] == f"{GROUPS}/rg/gz"
