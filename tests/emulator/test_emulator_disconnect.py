"""A client that announces a body and hangs up before sending all of it: the emulator logs one
line saying so (no traceback, no 500 to nobody) and keeps serving."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from armguard.testing import EmulatorHandle

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
RG_URL = f"{RG}?api-version=2024-03-01"


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture, served: EmulatorHandle
) -> Iterator[pytest.LogCaptureFixture]:
    """Every record from the emulator and from uvicorn (whose loggers do not propagate to the
    root logger caplog listens on), whichever thread logs it."""
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="armguard.emulator")
    try:
        yield caplog
    finally:
        uvicorn.removeHandler(caplog.handler)


def _hang_up_mid_body(base_url: str, method: str, target: str) -> None:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    body = b'{"location": "eastus", "tags": {"half": "sent"}}'
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\n"
            f"Host: {parts.hostname}:{parts.port}\r\n"
            "Authorization: Bearer token\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )


def _await_record(logs: pytest.LogCaptureFixture, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in r.getMessage() for r in logs.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in logs.records]
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("method", "target", "shown"),
    [
        ("PUT", RG_URL, f"PUT {RG}"),
        ("POST", "/_armguard/faults", "POST /_armguard/faults"),
    ],
)
def test_a_client_that_hangs_up_mid_body_is_one_log_line(
    served: EmulatorHandle, logs: pytest.LogCaptureFixture, method: str, target: str, shown: str
) -> None:
    _hang_up_mid_body(served.base_url, method, target)
    line = f"client disconnected before sending the whole body: {shown}"
    _await_record(logs, line)
    # The server keeps serving, and the half-sent PUT created nothing.
    with httpx.Client(base_url=served.base_url, headers={"Authorization": "Bearer t"}) as http:
        assert http.get(RG_URL).status_code == 404
        assert http.put(RG_URL, json={"location": "eastus"}).status_code == 201
    messages = [r.getMessage() for r in logs.records]
    assert [m for m in messages if "disconnected" in m] == [line]
    assert not [r for r in logs.records if r.exc_info or r.levelno >= logging.ERROR], messages
    assert "Traceback" not in logs.text
