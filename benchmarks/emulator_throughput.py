"""Emulator throughput: bounded load against armguard's emulator and moto, one generator for both.

Each target runs as its own subprocess on 127.0.0.1, started and stopped (SIGTERM) here. The
load generator is ``wrk`` when it is on PATH (``--load-generator wrk``: N wrk threads with one
connection each, for ``--duration`` seconds, driven by a generated Lua script), else this
script's asyncio clients (``--load-generator python``): a fixed number of requests per scenario
through one shared ``httpx.AsyncClient`` (``--client httpx``) or a minimal keep-alive HTTP/1.1
client on asyncio streams (``--client raw``). httpx spends milliseconds of CPU per request on a
small machine, so it saturates before the server does; ``client_cpu_s`` shows when a generator
is the bottleneck, and ``server_cpu_us_per_http_request`` what a request costs the server. The
result is one JSON document on stdout; progress goes to stderr.

Scenarios, each with its moto counterpart so the two can be compared in one run:

``get``
    armguard: GET a virtual network. moto: S3 GetObject.
``conditional_put``
    armguard: each client GETs its own virtual network and PUTs it back with ``If-Match`` (200).
    moto: each client HEADs its own object and PutObjects it with ``If-Match`` (200).
``conditional_put_chained``
    armguard: each client reads its own virtual network once (an unmeasured GET), then only
    PUTs it, each with ``If-Match`` set to the ETag of its previous PUT's answer (the emulator
    sends no ``ETag`` header: the ETag is the ``etag`` of the PUT's response body) and a new
    tag value, so every counted request is an accepted conditional write (200). moto: the same
    chain of PutObjects, each with ``If-Match`` set to the previous PutObject's ``ETag`` header.
``held_put``
    armguard: PUT a virtual network whose creation is still running, so ARM's refusal path
    answers (409 AnotherOperationInProgress). moto has no running operations; its refusal path
    is a PutObject with a stale ``If-Match`` (412 PreconditionFailed).

The held resource lives in a second emulator started with a large ``--time-scale`` so its
creation outlasts the run; the first one runs at ``--time-scale 0`` so every write completes at
once and conditional PUTs see 200. Both are checked before measuring (an observable state, not
a sleep): a scenario whose precondition does not hold is reported as an error, not measured.

Run ``python benchmarks/emulator_throughput.py --help`` for the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

SUB = "00000000-0000-0000-0000-00000000b0b0"
RG = f"/subscriptions/{SUB}/resourceGroups/bench"
VNET_TYPE = "providers/Microsoft.Network/virtualNetworks"
RG_API = "2024-03-01"
NET_API = "2024-05-01"
ARM_HEADERS = {"Authorization": "Bearer benchmark", "Content-Type": "application/json"}
# moto routes a request to S3 by the credential scope of a SigV4 header; it does not verify it.
S3_HEADERS = {
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=00"
    ),
    "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
}
SCENARIOS = ("get", "conditional_put", "conditional_put_chained", "held_put")
MOTO_NAMES = {
    "get": "get",
    "conditional_put": "conditional_put",
    "conditional_put_chained": "conditional_put_chained",
    "held_put": "stale_put",
}
CONDITIONAL = ("conditional_put", "conditional_put_chained")
# What one counted request of each scenario is: recorded next to its numbers.
DESCRIPTIONS = {
    "armguard": {
        "get": "GET of a virtual network (expected 200).",
        "conditional_put": (
            "One GET->PUT cycle: each client GETs its own virtual network (unmeasured, not "
            "counted) and PUTs it back with If-Match set to the GET's ETag and a new tag "
            "value; the counted request is that PUT (expected 200). Two HTTP requests per "
            "counted PUT."
        ),
        "conditional_put_chained": (
            "One conditional PUT of a chain: each client GETs its own virtual network once at "
            "the start of a run (unmeasured, not counted), then sends only PUTs, each with "
            "If-Match set to the ETag of its previous PUT's response (the etag field of the "
            "response body; the emulator sends no ETag header) and a new tag value. The "
            "counted request is one such PUT (expected 200 or 201; a 412 would mean the chain "
            "broke). One HTTP request per counted PUT."
        ),
        "held_put": (
            "PUT of a virtual network whose creation is still running (expected 409 "
            "AnotherOperationInProgress)."
        ),
    },
    "moto": {
        "get": "S3 GetObject (expected 200).",
        "conditional_put": (
            "One read->PutObject cycle: each client reads its own object (HEAD; GET under wrk; "
            "unmeasured, not counted) and PutObjects new content with If-Match set to the "
            "read's ETag; the counted request is that PutObject (expected 200)."
        ),
        "conditional_put_chained": (
            "One conditional PutObject of a chain: each client reads its own object once at "
            "the start of a run (HEAD; GET under wrk; unmeasured, not counted), then sends only "
            "PutObjects of "
            "new content, each with If-Match set to the ETag response header of its previous "
            "PutObject. The counted request is one such PutObject (expected 200)."
        ),
        "stale_put": "PutObject with a stale If-Match (expected 412 PreconditionFailed).",
    },
}
URL_RE = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\]):\d+")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- subprocesses ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    tail: list[str] = field(default_factory=list)
    drains: list[asyncio.Task[None]] = field(default_factory=list)

    def cpu_seconds(self) -> float | None:
        """User+system CPU of the server process (Linux /proc), to tell client- from
        server-bound runs."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drain(stream: asyncio.StreamReader, sink: list[str], found: asyncio.Future[str]) -> None:
    # Servers log every request; an undrained pipe would stall them mid-benchmark.
    while True:
        line = await stream.readline()
        if not line:
            if not found.done():
                found.set_exception(RuntimeError("the server exited before printing its URL"))
            return
        text = line.decode("utf-8", "replace").rstrip()
        sink.append(text)
        del sink[:-20]
        match = URL_RE.search(text)
        if match and not found.done():
            found.set_result(match.group(0))


async def start_server(name: str, argv: Sequence[str], startup_timeout: float) -> Server:
    log(f"starting {name}: {shlex.join(argv)}")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    tail: list[str] = []
    drains = [
        asyncio.create_task(_drain(proc.stdout, tail, found)),
        asyncio.create_task(_drain(proc.stderr, tail, found)),
    ]
    server = Server(name, proc, "", tail, drains)
    try:
        server.url = await asyncio.wait_for(found, startup_timeout)
    except (TimeoutError, RuntimeError) as exc:
        await stop_server(server)
        output = "\n".join(tail) or "(no output)"
        raise RuntimeError(f"{name} did not start ({exc!s}); its last output:\n{output}") from None
    log(f"{name} listening on {server.url} (pid {proc.pid})")
    return server


async def stop_server(server: Server) -> None:
    if server.proc.returncode is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.proc.wait(), 15)
        except TimeoutError:
            log(f"{server.name} ignored SIGTERM for 15 s; killing pid {server.proc.pid}")
            server.proc.kill()
            await server.proc.wait()
    for task in server.drains:
        task.cancel()
    await asyncio.gather(*server.drains, return_exceptions=True)


def free_port() -> int:
    # moto_server has no "--port 0"; the window between close and its bind is tiny on loopback.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running(name: str, argv: Sequence[str], timeout: float) -> AsyncIterator[Server]:
    server = await start_server(name, argv, timeout)
    try:
        yield server
    finally:
        await stop_server(server)
        log(f"{name} stopped (exit {server.proc.returncode})")


# -- clients --------------------------------------------------------------------------------


class Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


class Client(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any: ...


class RawProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


TRANSPORT_ERRORS = (httpx.HTTPError, OSError, asyncio.IncompleteReadError, RawProtocolError)


@dataclass
class RawResponse:
    status_code: int
    headers: dict[str, str]  # lower-cased names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RawClient:
    """Keep-alive HTTP/1.1 over asyncio streams, one connection per concurrent request: just
    enough HTTP to drive a server without the client costing more than the server."""

    def __init__(
        self, base_url: str, headers: dict[str, str], connections: int, timeout: float
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"the raw client speaks plain http to host:port, not {base_url}")
        self._host, self._port = parts.hostname, parts.port
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[Connection] = []
        self._timeout = timeout

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        body = content or b""
        extra = dict(headers or {})
        if json is not None:
            body = _json_bytes(json)
            extra.setdefault("Content-Type", "application/json")
        head = (
            f"{method} {url} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._fixed}"
            + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        async with self._slots:
            conn = (
                self._idle.pop()
                if self._idle
                else await asyncio.open_connection(self._host, self._port)
            )
            try:
                response, reusable = await asyncio.wait_for(
                    _exchange(conn, head.encode("latin-1") + body, method), self._timeout
                )
            except BaseException:
                conn[1].close()
                raise
            if reusable:
                self._idle.append(conn)
            else:
                conn[1].close()
            return response


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _exchange(conn: Connection, request: bytes, method: str) -> tuple[RawResponse, bool]:
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise RawProtocolError(f"bad status line {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    reusable = headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or status < 200:
        return RawResponse(status, headers, b""), reusable
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        body, reusable = await reader.read(), False
    return RawResponse(status, headers, body), reusable


def open_client(
    kind: str, base_url: str, headers: dict[str, str], clients: int, timeout: float
) -> contextlib.AbstractAsyncContextManager[Any]:
    if kind == "raw":
        return RawClient(base_url, headers, clients, timeout)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout)


# -- wrk ------------------------------------------------------------------------------------

# One Lua state per wrk thread and one connection per thread, so a thread is a client: it owns
# its resource. In "cycle" mode it alternates GET and PUT on its own connection; in "chain" mode
# it GETs once, then only PUTs, each with the ETag of the previous PUT's answer (a failed PUT
# sends it back to a GET, so a broken chain shows up as non-2xx counts, not as a stall). Every
# counted request is counted by status in response(); the reads are "extra"; done() prints one
# line of JSON that the benchmark parses.
WRK_LUA = r"""
local threads, next_id = {}, 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  statuses, measured, extra, etag, put_sent, seq = {}, 0, 0, nil, false, 0
  local i = (id % #PATHS) + 1
  path, body_head, body_tail = PATHS[i], BODY_HEADS[i], BODY_TAILS[i]
end
local function count(status)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  measured = measured + 1
end
local function etag_of(headers, body)
  local e = headers["etag"] or headers["ETag"] or headers["Etag"]
  if e then return e end
  local m = string.match(body or "", '"etag":"(.-[^\\])"')
  if m then return (string.gsub(m, '\\"', '"')) end
  return nil
end
function request()
  if MODE == "cycle" or MODE == "chain" then
    if etag == nil then
      put_sent = false
      return wrk.format(READ_METHOD, path, HEADERS)
    end
    put_sent = true
    local h = {}
    for k, v in pairs(HEADERS) do h[k] = v end
    h["If-Match"] = etag
    -- A new tag value per PUT, so every write changes the resource.
    local tag = extra
    if MODE == "chain" then seq = seq + 1; tag = seq end
    return wrk.format(WRITE_METHOD, path, h, body_head .. tostring(id) .. "-" .. tostring(tag) .. body_tail)
  end
  return wrk.format(MODE_METHOD, path, HEADERS, FIXED_BODY)
end
function response(status, headers, body)
  if MODE ~= "cycle" and MODE ~= "chain" then count(status) return end
  if put_sent then
    count(status)
    put_sent = false
    if MODE == "chain" and (status == 200 or status == 201) then
      etag = etag_of(headers, body)
    else
      etag = nil
    end
    return
  end
  extra = extra + 1
  if status == 200 then etag = etag_of(headers, body) end
  if etag == nil then count(status) end
end
function done(summary, latency, requests)
  local totals, measured_all, extra_all = {}, 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do totals[k] = (totals[k] or 0) + v end
    measured_all = measured_all + t:get("measured")
    extra_all = extra_all + t:get("extra")
  end
  local parts = {}
  for k, v in pairs(totals) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us":%d,"requests":%d,"measured":%d,"extra":%d,' ..
    '"p50_us":%d,"p99_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.duration, summary.requests, measured_all, extra_all,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ","),
    e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkPlan:
    """What each wrk client sends: ``get``/``fixed`` repeat one request, ``cycle`` reads its
    resource and writes it back with ``If-Match`` (the read is an unmeasured extra request),
    ``chain`` reads its resource once (unmeasured) and then only writes it, each write with
    ``If-Match`` set to the ETag of the previous write's answer."""

    mode: str  # "fixed", "cycle" or "chain"
    paths: list[str]
    headers: dict[str, str]
    method: str = "GET"
    body: str = ""
    read_method: str = "GET"
    write_method: str = "PUT"
    bodies: list[str] = field(default_factory=list)
    """``cycle``/``chain``: the PUT body per path, with ``TAG`` where each write puts a fresh
    tag."""


TAG = "@TAG@"


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_script(plan: WrkPlan) -> str:
    paths = ", ".join(_lua_string(p) for p in plan.paths)
    bodies = [b.split(TAG, 1) for b in plan.bodies] or [["", ""] for _ in plan.paths]
    heads = ", ".join(_lua_string(b[0]) for b in bodies)
    tails = ", ".join(_lua_string(b[-1]) for b in bodies)
    headers = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in plan.headers.items())
    prelude = "\n".join(
        [
            f'MODE = "{plan.mode}"',
            f"MODE_METHOD = {_lua_string(plan.method)}",
            f"READ_METHOD = {_lua_string(plan.read_method)}",
            f"WRITE_METHOD = {_lua_string(plan.write_method)}",
            f"PATHS = {{{paths}}}",
            f"HEADERS = {{{headers}}}",
            f"FIXED_BODY = {_lua_string(plan.body) if plan.body else 'nil'}",
            f"BODY_HEADS = {{{heads}}}",
            f"BODY_TAILS = {{{tails}}}",
        ]
    )
    return prelude + "\n" + WRK_LUA


async def run_wrk(
    plan: WrkPlan, url: str, *, clients: int, seconds: float, timeout: float, workdir: Path
) -> dict[str, Any]:
    script = workdir / f"plan-{plan.mode}-{plan.method}-{len(plan.paths)}.lua"
    script.write_text(wrk_script(plan))
    argv = [
        "wrk",
        f"-t{clients}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(script),
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    text = out.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith("WRK_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
            return result
    raise RuntimeError(
        f"wrk exited {proc.returncode} without a result: {(text + err.decode())[-600:]}"
    )


async def quiesce(server: Server, *, idle_cpu_s: float = 0.01, limit_s: float = 30.0) -> None:
    """Wait until the server is idle (under ``idle_cpu_s`` of CPU in 0.25 s): the observable
    sign that it has finished the requests a stopped load generator left in flight."""
    deadline = time.monotonic() + limit_s
    before = server.cpu_seconds()
    while before is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        after = server.cpu_seconds()
        if after is None or after - before < idle_cpu_s:
            return
        before = after
    if before is not None:
        log(f"{server.name} still busy after {limit_s:g} s of waiting for it to go idle")


LATENCY_OF = {
    "fixed": "the measured request",
    "cycle": "every request",
    "chain": "every request (the counted PUTs, plus one unmeasured GET per client per run)",
}


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


async def measure_wrk(
    name: str, plan: WrkPlan, *, args: argparse.Namespace, server: Server, workdir: Path
) -> dict[str, Any]:
    """Run ``plan`` with ``args.clients`` wrk clients for ``args.duration`` seconds, after an
    unmeasured warm-up of ``args.warmup_duration`` seconds."""
    if args.warmup_duration > 0:
        await run_wrk(
            plan,
            server.url,
            clients=args.clients,
            seconds=args.warmup_duration,
            timeout=args.timeout,
            workdir=workdir,
        )
        # wrk stops with requests in flight; a slow server still runs them after it exits. A
        # warm-up PUT landing after the measured run's first read would make that client's
        # next If-Match stale (412), and its CPU would count against the measured run.
        await quiesce(server)
    cpu_server_before = server.cpu_seconds()
    cpu_children_before = _children_cpu()
    raw = await run_wrk(
        plan,
        server.url,
        clients=args.clients,
        seconds=args.duration,
        timeout=args.timeout,
        workdir=workdir,
    )
    wrk_cpu = _children_cpu() - cpu_children_before
    cpu_server_after = server.cpu_seconds()
    elapsed = raw["duration_us"] / 1e6
    transport = {k: v for k, v in raw["errors"].items() if v}
    measured = raw["measured"] + sum(transport.values())
    result: dict[str, Any] = {
        "requests": measured,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(measured / elapsed, 1) if elapsed else None,
        # wrk keeps one latency histogram per run: in a GET→PUT cycle it holds both requests.
        "latency_of": LATENCY_OF[plan.mode],
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "status_counts": {k: raw["statuses"][k] for k in sorted(raw["statuses"], key=int)},
        "transport_errors": transport,
        "client_cpu_s": round(wrk_cpu, 2),
    }
    if cpu_server_before is not None and cpu_server_after is not None:
        result["server_cpu_s"] = round(cpu_server_after - cpu_server_before, 2)
        if raw["requests"]:
            # What a request costs the server, whatever else the machine was doing.
            per = (cpu_server_after - cpu_server_before) / raw["requests"]
            result["server_cpu_us_per_http_request"] = round(per * 1e6)
    if raw["extra"] or plan.mode != "fixed":
        result["http_requests_per_s"] = round(raw["requests"] / elapsed, 1) if elapsed else None
        result["unmeasured_requests"] = raw["extra"]
        if cpu_server_before is not None and cpu_server_after is not None and measured:
            # Per counted request: a cycle's PUT carries the cost of its GET too.
            per = (cpu_server_after - cpu_server_before) / measured
            result["server_cpu_us_per_counted_request"] = round(per * 1e6)
    log(
        f"{server.name} {name} (wrk): {result['requests_per_s']} req/s, p50 {result['p50_ms']} "
        f"ms, p99 {result['p99_ms']} ms, statuses {result['status_counts']}"
    )
    return result


# -- measurement ----------------------------------------------------------------------------


@dataclass
class Recorder:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    extra_requests: int = 0  # unmeasured helper requests (the GET of a GET→PUT cycle)

    async def timed(self, send: Awaitable[Response]) -> Response | None:
        start = time.perf_counter()
        try:
            response = await send
        except TRANSPORT_ERRORS as exc:
            self.transport_errors[type(exc).__name__] += 1
            return None
        self.latencies_ms.append((time.perf_counter() - start) * 1000)
        self.statuses[response.status_code] += 1
        return response


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 3)


Op = Callable[[int, Recorder], Awaitable[None]]


async def measure(
    name: str, op: Op, *, clients: int, requests: int, warmup: int, server: Server
) -> dict[str, Any]:
    """Run ``op`` ``requests`` times over ``clients`` concurrent workers, after a warm-up."""

    async def run(total: int, recorder: Recorder) -> None:
        issued = 0

        async def worker(client: int) -> None:
            nonlocal issued
            while issued < total:
                issued += 1
                await op(client, recorder)

        await asyncio.gather(*(worker(c) for c in range(clients)))

    if warmup:
        await run(warmup, Recorder())
    recorder = Recorder()
    cpu_server_before = server.cpu_seconds()
    cpu_client_before = time.process_time()
    started = time.perf_counter()
    await run(requests, recorder)
    elapsed = time.perf_counter() - started
    cpu_client = time.process_time() - cpu_client_before
    cpu_server_after = server.cpu_seconds()
    latencies = sorted(recorder.latencies_ms)
    # Every attempt counts, including a GET→PUT cycle that failed at its GET.
    measured = sum(recorder.statuses.values()) + sum(recorder.transport_errors.values())
    result: dict[str, Any] = {
        "requests": measured,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(measured / elapsed, 1) if elapsed else None,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "status_counts": {str(k): v for k, v in sorted(recorder.statuses.items())},
        "transport_errors": dict(recorder.transport_errors),
        "client_cpu_s": round(cpu_client, 2),
    }
    if cpu_server_before is not None and cpu_server_after is not None:
        result["server_cpu_s"] = round(cpu_server_after - cpu_server_before, 2)
        total = measured + recorder.extra_requests
        if total:
            per = (cpu_server_after - cpu_server_before) / total
            result["server_cpu_us_per_http_request"] = round(per * 1e6)
    if recorder.extra_requests:
        total_http = measured + recorder.extra_requests
        result["http_requests_per_s"] = round(total_http / elapsed, 1) if elapsed else None
        result["unmeasured_requests"] = recorder.extra_requests
        if cpu_server_before is not None and cpu_server_after is not None and measured:
            per = (cpu_server_after - cpu_server_before) / measured
            result["server_cpu_us_per_counted_request"] = round(per * 1e6)
    log(
        f"{server.name} {name}: {result['requests_per_s']} req/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, statuses {result['status_counts']}"
    )
    return result


async def run_scenario(
    name: str, op: Op, plan: WrkPlan, *, args: argparse.Namespace, server: Server
) -> dict[str, Any]:
    """Measure one scenario with the chosen load generator."""
    if args.load_generator == "wrk":
        return await measure_wrk(name, plan, args=args, server=server, workdir=args.workdir)
    return await measure(
        name,
        op,
        clients=args.clients,
        requests=args.requests,
        warmup=args.warmup,
        server=server,
    )


def check_expected(
    result: dict[str, Any],
    expected: int | tuple[int, ...],
    *,
    description: str | None = None,
    conditional: bool = False,
) -> dict[str, Any]:
    accepted = (expected,) if isinstance(expected, int) else expected
    counts = {int(k): v for k, v in result["status_counts"].items()}
    unexpected = sum(v for k, v in counts.items() if k not in accepted)
    result["expected_status"] = expected if isinstance(expected, int) else list(expected)
    result["errors"] = unexpected + sum(result["transport_errors"].values())
    if conditional:
        # A conditional write that is refused is the number to watch: 412 = a stale If-Match.
        result["non_2xx"] = sum(v for k, v in counts.items() if not 200 <= k < 300)
        result["status_412"] = counts.get(412, 0)
    if description is not None:
        result = {"description": description, **result}
    return result


# -- armguard ---------------------------------------------------------------------------------


def vnet_path(name: str) -> str:
    return f"{RG}/{VNET_TYPE}/{name}?api-version={NET_API}"


def vnet_body(index: int, tag: str = "0") -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": {"bench": tag},
        "properties": {"addressSpace": {"addressPrefixes": [f"10.{index % 250}.0.0/16"]}},
    }


async def arm_expect(client: Client, method: str, path: str, ok: set[int], **kw: Any) -> Response:
    response: Response = await client.request(method, path, **kw)
    if response.status_code not in ok:
        raise RuntimeError(
            f"{method} {path} answered {response.status_code}: {response.text[:400]}"
        )
    return response


async def arm_setup(client: Client, vnets: int) -> None:
    await arm_expect(
        client, "PUT", f"{RG}?api-version={RG_API}", {200, 201}, json={"location": "westeurope"}
    )
    for i in range(vnets):
        await arm_expect(client, "PUT", vnet_path(f"vnet-{i}"), {200, 201}, json=vnet_body(i))
    # Writes complete at time-scale 0; wait on the observable state before measuring.
    for i in range(vnets):
        state = ""
        for _ in range(100):
            got = await arm_expect(client, "GET", vnet_path(f"vnet-{i}"), {200})
            state = got.json().get("properties", {}).get("provisioningState", "")
            if state == "Succeeded":
                break
        else:
            raise RuntimeError(f"vnet-{i} stayed '{state}'; run the emulator at --time-scale 0")


def etag_of(response: Response) -> str | None:
    header: str | None = response.headers.get("etag")
    if header:
        return header
    body = response.json()
    etag = body.get("etag") if isinstance(body, dict) else None
    return etag if isinstance(etag, str) else None


def arm_ops(client: Client, clients: int) -> dict[str, Op]:
    async def get(c: int, rec: Recorder) -> None:
        await rec.timed(client.request("GET", vnet_path(f"vnet-{c % clients}")))

    async def conditional_put(c: int, rec: Recorder) -> None:
        name = f"vnet-{c % clients}"
        try:
            current = await client.request("GET", vnet_path(name))
        except TRANSPORT_ERRORS as exc:
            rec.transport_errors[type(exc).__name__] += 1
            return
        rec.extra_requests += 1
        etag = etag_of(current) if current.status_code == 200 else None
        if etag is None:
            rec.statuses[current.status_code] += 1
            return
        body = vnet_body(c % clients, tag=str(rec.extra_requests))
        await rec.timed(
            client.request("PUT", vnet_path(name), json=body, headers={"If-Match": etag})
        )

    # conditional_put_chained: the ETag each client got from its last accepted PUT.
    chain: dict[int, str] = {}
    seq = Counter[int]()

    async def conditional_put_chained(c: int, rec: Recorder) -> None:
        name = f"vnet-{c % clients}"
        etag = chain.pop(c, None)
        if etag is None:
            # The one read of a chain (again only after a refused PUT): unmeasured.
            try:
                current = await client.request("GET", vnet_path(name))
            except TRANSPORT_ERRORS as exc:
                rec.transport_errors[type(exc).__name__] += 1
                return
            rec.extra_requests += 1
            etag = etag_of(current) if current.status_code == 200 else None
            if etag is None:
                rec.statuses[current.status_code] += 1
                return
        seq[c] += 1
        body = vnet_body(c % clients, tag=f"{c}-{seq[c]}")
        put = await rec.timed(
            client.request("PUT", vnet_path(name), json=body, headers={"If-Match": etag})
        )
        following = etag_of(put) if put is not None and put.status_code in (200, 201) else None
        if following is not None:
            chain[c] = following

    async def held_put(c: int, rec: Recorder) -> None:
        await rec.timed(
            client.request("PUT", vnet_path("vnet-held"), json=vnet_body(0, tag=f"held-{c}"))
        )

    return {
        "get": get,
        "conditional_put": conditional_put,
        "conditional_put_chained": conditional_put_chained,
        "held_put": held_put,
    }


def arm_plans(clients: int) -> dict[str, WrkPlan]:
    """The wrk form of :func:`arm_ops`: the same requests, bodies and expected answers."""
    paths = [vnet_path(f"vnet-{i}") for i in range(clients)]
    return {
        "get": WrkPlan("fixed", paths, ARM_HEADERS),
        "conditional_put": WrkPlan(
            "cycle",
            paths,
            ARM_HEADERS,
            bodies=[_json_bytes(vnet_body(i, tag=TAG)).decode() for i in range(clients)],
        ),
        # The ETag of a network PUT is only in its response body ("etag"); the Lua reads the
        # ETag header first and falls back to the body, so either form chains.
        "conditional_put_chained": WrkPlan(
            "chain",
            paths,
            ARM_HEADERS,
            bodies=[_json_bytes(vnet_body(i, tag=TAG)).decode() for i in range(clients)],
        ),
        "held_put": WrkPlan(
            "fixed",
            [vnet_path("vnet-held")],
            ARM_HEADERS,
            method="PUT",
            body=_json_bytes(vnet_body(0, tag="held-wrk")).decode(),
        ),
    }


async def arm_hold(client: Client) -> None:
    """Start a creation that outlasts the run and prove that a write is now refused."""
    await arm_expect(
        client, "PUT", f"{RG}?api-version={RG_API}", {200, 201}, json={"location": "westeurope"}
    )
    # The refused writes differ from this body: an identical PUT would be an idempotent retry.
    await arm_expect(client, "PUT", vnet_path("vnet-held"), {200, 201}, json=vnet_body(0))
    probe = await client.request("PUT", vnet_path("vnet-held"), json=vnet_body(0, tag="probe"))
    if probe.status_code != 409:
        raise RuntimeError(
            f"the held vnet answered {probe.status_code}, not 409; start the held emulator with "
            f"a larger --held-time-scale: {probe.text[:300]}"
        )


def emulator_argv(args: argparse.Namespace, time_scale: float) -> list[str]:
    base = shlex.split(args.emulator_cmd) if args.emulator_cmd else [_armguard_executable()]
    return [*base, "emulator", "--port", "0", "--time-scale", f"{time_scale:g}"]


def _armguard_executable() -> str:
    beside = Path(sys.executable).with_name("armguard")
    return str(beside) if beside.exists() else (shutil.which("armguard") or "armguard")


async def bench_armguard(args: argparse.Namespace, scenarios: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    plain = [s for s in scenarios if s != "held_put"]
    if plain:
        async with (
            running(
                "armguard", emulator_argv(args, args.time_scale), args.startup_timeout
            ) as server,
            open_client(args.client, server.url, ARM_HEADERS, args.clients, args.timeout) as client,
        ):
            await arm_setup(client, args.clients)
            ops = arm_ops(client, args.clients)
            plans = arm_plans(args.clients)
            for name in plain:
                result = await run_scenario(name, ops[name], plans[name], args=args, server=server)
                # A chained PUT is an update, 200; a 201 would still be an accepted write.
                expected = (200, 201) if name == "conditional_put_chained" else 200
                out[name] = check_expected(
                    result,
                    expected,
                    description=DESCRIPTIONS["armguard"][name],
                    conditional=name in CONDITIONAL,
                )
    if "held_put" in scenarios:
        async with (
            running(
                "armguard-held", emulator_argv(args, args.held_time_scale), args.startup_timeout
            ) as server,
            open_client(args.client, server.url, ARM_HEADERS, args.clients, args.timeout) as client,
        ):
            await arm_hold(client)
            result = await run_scenario(
                "held_put",
                arm_ops(client, args.clients)["held_put"],
                arm_plans(args.clients)["held_put"],
                args=args,
                server=server,
            )
            out["held_put"] = check_expected(
                result, 409, description=DESCRIPTIONS["armguard"]["held_put"]
            )
    return out


# -- moto (S3) --------------------------------------------------------------------------------


def moto_ops(client: Client, clients: int, stale: str) -> dict[str, Op]:
    async def get(c: int, rec: Recorder) -> None:
        await rec.timed(client.request("GET", f"/bench/obj-{c % clients}"))

    async def conditional_put(c: int, rec: Recorder) -> None:
        key = f"/bench/obj-{c % clients}"
        try:
            current = await client.request("HEAD", key)
        except TRANSPORT_ERRORS as exc:
            rec.transport_errors[type(exc).__name__] += 1
            return
        rec.extra_requests += 1
        etag = current.headers.get("etag")
        if current.status_code != 200 or not etag:
            rec.statuses[current.status_code] += 1
            return
        body = f"v{rec.extra_requests}".encode()
        await rec.timed(client.request("PUT", key, content=body, headers={"If-Match": etag}))

    chain: dict[int, str] = {}
    seq = Counter[int]()

    async def conditional_put_chained(c: int, rec: Recorder) -> None:
        key = f"/bench/obj-{c % clients}"
        etag = chain.pop(c, None)
        if etag is None:
            try:
                current = await client.request("HEAD", key)
            except TRANSPORT_ERRORS as exc:
                rec.transport_errors[type(exc).__name__] += 1
                return
            rec.extra_requests += 1
            etag = current.headers.get("etag")
            if current.status_code != 200 or not etag:
                rec.statuses[current.status_code] += 1
                return
        seq[c] += 1
        put = await rec.timed(
            client.request(
                "PUT", key, content=f"c{c}-{seq[c]}".encode(), headers={"If-Match": etag}
            )
        )
        following = put.headers.get("etag") if put is not None and put.status_code == 200 else None
        if following:
            chain[c] = str(following)

    async def stale_put(c: int, rec: Recorder) -> None:
        await rec.timed(
            client.request("PUT", "/bench/obj-stale", content=b"x", headers={"If-Match": stale})
        )

    return {
        "get": get,
        "conditional_put": conditional_put,
        "conditional_put_chained": conditional_put_chained,
        "stale_put": stale_put,
    }


async def moto_setup(client: Client, clients: int) -> tuple[str, str | None]:
    """Create the objects; return a stale ETag for ``stale_put`` and, when moto does not
    accept a PutObject whose ``If-Match`` is the ETag header of the previous PutObject, why
    (``conditional_put_chained`` is then reported as not measured)."""
    created = await client.request("PUT", "/bench")
    if created.status_code != 200:
        raise RuntimeError(f"moto refused CreateBucket: {created.status_code} {created.text[:300]}")
    for i in range(clients):
        put = await client.request("PUT", f"/bench/obj-{i}", content=b"v0")
        if put.status_code != 200:
            raise RuntimeError(f"moto refused PutObject: {put.status_code} {put.text[:300]}")
    first = await client.request("PUT", "/bench/obj-stale", content=b"a")
    second = await client.request("PUT", "/bench/obj-stale", content=b"b")
    stale = str(first.headers["etag"])
    chained = await client.request(
        "PUT",
        "/bench/obj-stale",
        content=b"b2",
        headers={"If-Match": str(second.headers.get("etag", ""))},
    )
    no_chain = (
        None
        if chained.status_code == 200 and chained.headers.get("etag")
        else (
            "moto does not honour If-Match set to the previous PutObject's ETag header "
            f"(answered {chained.status_code}, ETag {chained.headers.get('etag')!r}): "
            "conditional_put_chained not measured"
        )
    )
    probe = await client.request(
        "PUT", "/bench/obj-stale", content=b"c", headers={"If-Match": stale}
    )
    if probe.status_code != 412:
        raise RuntimeError(
            f"this moto does not honour If-Match on PutObject (got {probe.status_code}); "
            "this benchmark needs a moto that does (5.2.5 does)"
        )
    return stale, no_chain


def moto_plans(clients: int, stale: str) -> dict[str, WrkPlan]:
    """The wrk form of :func:`moto_ops`."""
    keys = [f"/bench/obj-{i}" for i in range(clients)]
    return {
        "get": WrkPlan("fixed", keys, S3_HEADERS),
        # wrk cannot read a HEAD response that announces a Content-Length (it waits for the
        # body), so its cycle reads the object with GET, which carries the same ETag.
        "conditional_put": WrkPlan("cycle", keys, S3_HEADERS, bodies=[f"v{TAG}"] * clients),
        # PutObject answers with an ETag header (the new content's MD5), which the next
        # PutObject sends as If-Match; the one read per client is a GET, as in the cycle.
        "conditional_put_chained": WrkPlan("chain", keys, S3_HEADERS, bodies=[f"c{TAG}"] * clients),
        "stale_put": WrkPlan(
            "fixed",
            ["/bench/obj-stale"],
            {**S3_HEADERS, "If-Match": stale},
            method="PUT",
            body="x",
        ),
    }


async def bench_moto(args: argparse.Namespace, scenarios: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    exe = Path(sys.executable).with_name("moto_server")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    argv = [*base, "-H", "127.0.0.1", "-p", str(free_port())]
    async with (
        running("moto", argv, args.startup_timeout) as server,
        open_client(args.client, server.url, S3_HEADERS, args.clients, args.timeout) as client,
    ):
        stale, no_chain = await moto_setup(client, args.clients)
        ops = moto_ops(client, args.clients, stale)
        plans = moto_plans(args.clients, stale)
        for scenario in scenarios:
            name = MOTO_NAMES[scenario]
            if name == "conditional_put_chained" and no_chain is not None:
                log(no_chain)
                out[name] = {"description": DESCRIPTIONS["moto"][name], "not_measured": no_chain}
                continue
            result = await run_scenario(name, ops[name], plans[name], args=args, server=server)
            out[name] = check_expected(
                result,
                412 if name == "stale_put" else 200,
                description=DESCRIPTIONS["moto"][name],
                conditional=name in CONDITIONAL,
            )
    return out


# -- main -------------------------------------------------------------------------------------


def ratios(armguard: dict[str, Any], moto: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, moto_name in MOTO_NAMES.items():
        mine, theirs = armguard.get(scenario), moto.get(moto_name)
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            continue
        if "requests_per_s" not in mine or "requests_per_s" not in theirs:
            continue
        out[scenario] = {
            "compared_with": f"moto {moto_name}",
            "requests_per_s": round(mine["requests_per_s"] / theirs["requests_per_s"], 2),
            "p50_ms": round(mine["p50_ms"] / theirs["p50_ms"], 2)
            if mine["p50_ms"] and theirs["p50_ms"]
            else None,
        }
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of armguard's emulator vs moto (loopback only). JSON on stdout."
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--requests", type=int, default=3000, help="measured requests per scenario (default 3000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="unmeasured requests first (default requests/10)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--targets", default="armguard,moto", help="comma-separated subset of armguard, moto"
    )
    parser.add_argument(
        "--time-scale", type=float, default=0.0, help="emulator time scale for get/put (0)"
    )
    parser.add_argument(
        "--held-time-scale",
        type=float,
        default=1000.0,
        help="time scale of the emulator holding a resource for held_put (1000)",
    )
    parser.add_argument(
        "--emulator-cmd",
        default=None,
        help="command that runs the armguard CLI (default: the 'armguard' next to this Python)",
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="httpx.AsyncClient (default) or a minimal asyncio HTTP/1.1 client that costs the "
        "load generator far less CPU per request",
    )
    has_wrk = shutil.which("wrk") is not None
    parser.add_argument(
        "--load-generator",
        choices=("wrk", "python"),
        default="wrk" if has_wrk else "python",
        help="wrk (default when it is on PATH: a C generator whose own CPU barely counts, run "
        "for --duration seconds) or this script's asyncio clients (--client, --requests)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="wrk: measured seconds per scenario (10)"
    )
    parser.add_argument(
        "--warmup-duration",
        type=float,
        default=2.0,
        help="wrk: unmeasured seconds per scenario first (2)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="server start, s")
    args = parser.parse_args(argv)
    bad: list[str] = []
    if not 1 <= args.clients <= 256:
        bad.append("--clients must be from 1 to 256")
    if not 1 <= args.requests <= 200_000:
        bad.append("--requests must be from 1 to 200000")
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown or not args.scenario_list:
        bad.append(
            f"--scenarios takes {', '.join(SCENARIOS)}, not {', '.join(unknown) or '(none)'}"
        )
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.target_list or any(t not in ("armguard", "moto") for t in args.target_list):
        bad.append("--targets takes armguard and/or moto")
    if args.warmup is None:
        args.warmup = min(500, args.requests // 10)
    if args.load_generator == "wrk" and not has_wrk:
        bad.append("--load-generator wrk needs 'wrk' on PATH (apt-get install wrk)")
    if not 1 <= args.duration <= 600:
        bad.append("--duration must be from 1 to 600 seconds")
    if not 0 <= args.warmup_duration <= 60:
        bad.append("--warmup-duration must be from 0 to 60 seconds")
    if bad:
        parser.error("; ".join(bad))
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "benchmark": "emulator_throughput",
        "config": {
            "clients": args.clients,
            "scenarios": args.scenario_list,
            "time_scale": args.time_scale,
            "held_time_scale": args.held_time_scale,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_generator": args.load_generator,
            **(
                {"duration_s": args.duration, "warmup_duration_s": args.warmup_duration}
                if args.load_generator == "wrk"
                else {
                    "requests": args.requests,
                    "warmup": args.warmup,
                    "client": args.client,
                    "httpx": httpx.__version__,
                }
            ),
            # The machine may be shared: the load before the run says how quiet it was.
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    }
    for target, bench in (("armguard", bench_armguard), ("moto", bench_moto)):
        if target not in args.target_list:
            continue
        try:
            doc[target] = await bench(args, args.scenario_list)
        except (RuntimeError, OSError) as exc:
            log(f"{target} failed: {exc}")
            doc[target] = {"error": str(exc)}
    if "armguard" in doc and "moto" in doc:
        doc["armguard_vs_moto"] = ratios(doc["armguard"], doc["moto"])
    if isinstance(doc.get("armguard"), dict):
        doc["conditional_put_target"] = target_check(doc["armguard"])
    return doc


TARGET_PER_S = 1500.0


def target_check(armguard: dict[str, Any]) -> dict[str, Any]:
    """The project's target, >= 1,500 conditional PUT/s, per conditional scenario: met only
    if the rate reaches it and every counted PUT was accepted."""
    out: dict[str, Any] = {"target_requests_per_s": TARGET_PER_S}
    for name in CONDITIONAL:
        result = armguard.get(name)
        if not isinstance(result, dict) or "requests_per_s" not in result:
            continue
        rate = result["requests_per_s"] or 0.0
        out[name] = {
            "requests_per_s": rate,
            "errors": result["errors"],
            "met": rate >= TARGET_PER_S and result["errors"] == 0,
        }
    return out


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped with it.
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="armguard-bench-") as workdir:
        args.workdir = Path(workdir)
        doc = asyncio.run(main_async(args))
    print(json.dumps(doc, indent=2))
    failed = any(isinstance(doc.get(t), dict) and "error" in doc[t] for t in args.target_list)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
