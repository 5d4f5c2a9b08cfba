"""The serving path at the socket: one write per response must never reorder, truncate or
drop bytes, whatever the client does (pipelining, large bodies, closing early)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from arm_helpers import api_version_for

from armguard.clock import ManualClock
from armguard.testing import emulator

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/wire"
API = f"api-version={api_version_for(RG)}"


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    buf = b""
    out: list[tuple[int, bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before every response arrived"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        out.append((status, rest[:length]))
        buf = rest[length:]
    return out


def test_pipelined_requests_get_whole_responses_in_order() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        host = urlsplit(arm.base_url)
        with socket.create_connection((host.hostname or "127.0.0.1", host.port or 80)) as sock:
            big = {"location": "eastus", "tags": {f"k{i}": "v" * 200 for i in range(40)}}
            payload = json.dumps(big).encode()
            batch = b"".join(
                [
                    _request("PUT", f"{RG}?{API}", payload),
                    *(_request("GET", f"{RG}?{API}") for _ in range(20)),
                    _request("GET", f"{RG}/providers/Microsoft.Network/nope/x?{API}"),
                    _request("GET", f"{RG}"),  # no api-version
                ]
            )
            sock.sendall(batch)
            responses = _read_responses(sock, 23)
        statuses = [s for s, _ in responses]
        assert statuses[0] == 201
        assert statuses[1:21] == [200] * 20
        for _, body in responses[1:21]:
            assert json.loads(body)["tags"] == big["tags"]
        assert statuses[21] in (400, 404)
        assert json.loads(responses[21][1])["error"]["code"]
        assert statuses[22] == 400
        assert json.loads(responses[22][1])["error"]["code"] == "MissingApiVersionParameter"


def test_a_client_that_hangs_up_early_does_not_disturb_the_next_one() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        host = urlsplit(arm.base_url)
        addr = (host.hostname or "127.0.0.1", host.port or 80)
        for _ in range(20):
            with socket.create_connection(addr) as sock:
                sock.sendall(_request("GET", f"{RG}?{API}"))
        with socket.create_connection(addr) as sock:
            sock.sendall(_request("PUT", f"{RG}?{API}", b'{"location":"eastus"}'))
            [(status, body)] = _read_responses(sock, 1)
        assert status in (200, 201)
        assert json.loads(body)["name"] == "wire"
