"""Pasted error text → the facts in it.

People paste ARM errors as the tool that met them printed them: az CLI, Terraform (autorest and
azcore eras), the Python/Go/JS/.NET SDKs, PowerShell, raw JSON bodies, operation-status
documents, Activity Log events (whose ``statusMessage`` is JSON inside a JSON string) and
deployment failures whose details carry more JSON in their messages. Rather than guess one
format, every recogniser runs over the text and contributes what it finds; JSON bodies win
because they keep the nesting, and the text lines add codes a body does not show. Unknown shapes
still get a scan for known codes and ARM phrases, so a half-pasted error is still read.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from armguard.arm.classify import KNOWN_CODES, ConflictKind, classify
from armguard.arm.errors import ErrorDetail
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id

__all__ = [
    "ErrorBody",
    "ParsedError",
    "body_facts",
    "foreign_source",
    "parse_error_text",
]

_MAX_JSON_STARTS = 400
_MAX_JSON_SCAN = 8_000_000
_MAX_MESSAGE = 4000
_MAX_PAIRS = 200
_WINDOW = 500_000
"""Of a paste over 1 MB, the parser reads the first and last 500 kB, where errors are."""
"""Bound on decode attempts so brace-heavy garbage cannot make parsing quadratic."""


@dataclass(frozen=True)
class ErrorBody:
    """One JSON error body in a paste, with what its enclosing object said about it (an
    Activity Log event's status and resource)."""

    error: ErrorDetail
    status: int | None = None
    resource: str | None = None


@dataclass(frozen=True)
class ParsedError:
    """What a pasted error says, independent of the tool that printed it."""

    error: ErrorDetail
    """The root error with every nested detail found (JSON bodies, SDK 'Exception Details')."""
    status: int | None = None
    format: str = "text"
    resource_ids: tuple[ResourceId, ...] = ()
    operation_url: str | None = None
    etag_submitted: str | None = None
    etag_live: str | None = None
    correlation_ids: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()
    retry_after: float | None = None
    deployment_name: str | None = None
    vm_size: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    """The normalised input, kept for phrase checks the error tree cannot answer."""
    residue: str = ""
    """The text of a body that looked like JSON but did not decode; its phrases still count."""
    bodies: tuple[ErrorBody, ...] = ()
    """Every distinct JSON error body, in order (an Activity Log export holds one per failed
    event); the root error folds them all."""

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message


# --- normalisation -----------------------------------------------------------------------

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BOX_PREFIX_RE = re.compile(r"^[ \t]*[│|╷╵>][ \t]?", re.MULTILINE)
_LOG_PREFIX_RE = re.compile(
    r"^[ \t]*(?:\[?\d{4}-\d\d-\d\dT[\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\]?[ \t]*|\[[^\]\n]{1,40}\][ \t]*"
    r"|##\[\w+\][ \t]*|VERBOSE:[ \t]*|< t:[^>\n]*>[ \t]*)+",
    re.MULTILINE,
)


def _normalise(text: str) -> str:
    text = _ANSI_RE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    # Terraform draws its diagnostics in a box and Markdown quotes with '>'; CI logs prefix
    # every line with a timestamp. None of that is part of the error.
    text = _BOX_PREFIX_RE.sub("", text)
    return _LOG_PREFIX_RE.sub("", text)


# --- JSON bodies --------------------------------------------------------------------------

_DECODER = json.JSONDecoder()


def _json_values(text: str) -> Iterator[Any]:
    """Every top-level JSON object or array embedded in free text, in order."""
    pos = 0
    attempts = 0
    scanned = 0
    while attempts < _MAX_JSON_STARTS and scanned < _MAX_JSON_SCAN:
        start = _next_json_start(text, pos)
        if start < 0:
            return
        attempts += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            # A failed attempt may have read far (an unterminated string); count what it read.
            scanned += max(exc.pos - start, 1)
            pos = start + 1
            continue
        except RecursionError:
            pos = start + 1
            continue
        if isinstance(value, dict | list) and value:
            yield value
        pos = end


def _next_json_start(text: str, pos: int) -> int:
    brace = text.find("{", pos)
    bracket = text.find("[{", pos)
    candidates = [i for i in (brace, bracket) if i >= 0]
    return min(candidates) if candidates else -1


def _loads_maybe(value: str) -> Any:
    stripped = value.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        return None


def _reason_status(value: Any) -> int | None:
    """``409``, ``"409"``, ``"Conflict"`` or ``"Conflict (HTTP Status Code: 409)"`` → 409."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 100 <= value <= 599 else None
    if not isinstance(value, str):
        return None
    m = re.search(r"\b([1-5]\d\d)\b", value)
    if m:
        return int(m.group(1))
    return _PHRASES.get(re.sub(r"[^a-z]", "", value.lower()))


_PHRASES: dict[str, int] = {
    s.phrase.replace(" ", "").replace("-", "").lower(): s.value for s in HTTPStatus if s >= 400
}


@dataclass
class _Found:
    errors: list[ErrorDetail] = field(default_factory=list)
    status: int | None = None
    event: bool = False
    bodies: list[ErrorBody] = field(default_factory=list)
    """Distinct error bodies, with the status and resource of the object each was found in."""
    origin: int = 0
    """Which top-level value (or element of a top-level array: one event) is being read."""
    seen: set[tuple[int, str, str]] = field(default_factory=set)

    def add(self, error: ErrorDetail, status: int | None, resource: str | None) -> None:
        self.errors.append(error)
        # One event says its error twice (statusMessage and responseBody): one body. The same
        # error in two events is two bodies (a retry storm).
        key = (self.origin, error.code.lower(), " ".join(error.message.split())[:300])
        if key not in self.seen:
            self.seen.add(key)
            self.bodies.append(ErrorBody(error, status, resource))


_KEY_ALIASES = {
    "code": "code",
    "errorcode": "code",
    "message": "message",
    "errormessage": "message",
    "details": "details",
    "target": "target",
    "error": "error",
    "additionalinfo": "additionalInfo",
    "statuscode": "statusCode",
    "httpstatuscode": "httpStatusCode",
    "status": "status",
    "properties": "properties",
    "statusmessage": "statusMessage",
}


def _canonical_keys(value: Any, depth: int = 0) -> Any:
    """App Service and .NET clients write ``Code``/``Message``/``ErrorCode``; ARM writes
    ``code``/``message``. One spelling lets one reader handle both."""
    if depth > 16:
        return value
    if isinstance(value, list):
        return [_canonical_keys(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _KEY_ALIASES.get(str(key).lower(), str(key))
            out.setdefault(name, _canonical_keys(item, depth + 1))
        return out
    return value


def _collect_json(
    value: Any,
    found: _Found,
    depth: int = 0,
    status: int | None = None,
    resource: str | None = None,
) -> None:
    """Find ARM error objects anywhere in a decoded JSON value.

    ``status`` and ``resource`` are what the enclosing object (an Activity Log event) says:
    its ``statusCode`` and ``resourceId``, kept with each error found inside it.
    """
    if depth > 12:
        return
    if isinstance(value, str):
        inner = _loads_maybe(value)
        if inner is not None:
            _collect_json(_canonical_keys(inner), found, depth + 1, status, resource)
        return
    if isinstance(value, list):
        for item in value:
            if depth <= 1:
                found.origin += 1  # an element of a top-level array or page: one event
            _collect_json(item, found, depth + 1, status, resource)
        return
    if not isinstance(value, Mapping):
        return
    if depth == 0:
        found.origin += 1
        value = _canonical_keys(value)
    for key in ("resourceId", "resourceUri", "id"):
        if isinstance(value.get(key), str) and value[key].lower().startswith("/subscriptions/"):
            resource = value[key]
            break
    for key in ("statusCode", "status", "httpStatusCode"):
        local = _reason_status(value.get(key))
        if local is not None and local >= 400:
            status = local
            if found.status is None:
                found.status = local
    inner = value.get("error")
    if isinstance(inner, Mapping) and (inner.get("code") or inner.get("message")):
        found.add(_expand(ErrorDetail.from_json(inner)), status, resource)
        return
    code = value.get("code")
    if isinstance(code, str) and code and ("message" in value or "details" in value):
        found.add(_expand(ErrorDetail.from_json(value)), status, resource)
        return
    props = value.get("properties")
    if isinstance(props, Mapping) and "statusMessage" in props:
        # An Activity Log event: its failure body is a JSON string, its status a reason phrase.
        found.event = True
        local = _reason_status(props.get("statusCode"))
        if local is not None and local >= 400:
            found.status = local
            status = local
    for item in value.values():
        if isinstance(item, Mapping | list) or (isinstance(item, str) and item[:1] in "{["):
            _collect_json(item, found, depth + 1, status, resource)


def _expand(detail: ErrorDetail, depth: int = 0) -> ErrorDetail:
    """Turn JSON carried inside a message (deployments do this) into nested details."""
    nested = [_expand(d, depth + 1) for d in detail.details if d.code or d.message or d.details]
    if depth < 8 and "{" in detail.message:
        found = _Found()
        for value in _json_values(detail.message):
            _collect_json(value, found)
        nested.extend(found.errors)
    return dataclasses.replace(detail, details=tuple(nested))


# --- text lines ---------------------------------------------------------------------------

_CODE = r"[A-Za-z][A-Za-z0-9_.]*"
_HEADLINE_RE = re.compile(
    rf"(?:^[ \t]*(?:ERROR:\s*)?|(?:Error|Exception)\w*:[ \t]*|: )\(({_CODE})\)[ \t]*(.*)$",
    re.MULTILINE,
)
_CODE_COLON_RE = re.compile(
    r"^[ \t]*(?:ERROR:[ \t]*)?([A-Z][a-z]+[A-Z][A-Za-z]+)[ \t]*(?::|-)[ \t]+(.+)$", re.M
)
_CODE_EQ_RE = re.compile(
    rf"\bCode\s*=\s*({_CODE})\s*;\s*Message\s*=\s*(.*)", re.IGNORECASE | re.DOTALL
)
_CODE_PAREN_RE = re.compile(rf"\(Code:\s*({_CODE})\)")
_ERROR_TYPE_RE = re.compile(
    rf"^[ \t]*Error type:\s*({_CODE})\s*$\n?(?:[ \t]*Error Message:\s*(.*))?", re.M
)
_JSONISH_CODE_RE = re.compile(
    r"[\\\"']*\bcode[\\\"']*\s*(?::|=>)\s*[\\\"']+([A-Za-z][A-Za-z0-9_.]{2,})", re.IGNORECASE
)
_KEY_LINE_RE = re.compile(
    r"^[ \t`]*(?:\d{1,2}\.[ \t]*|[-*][ \t]*)?"
    r"(Code|Message|ERROR CODE|ErrorCode|ErrorMessage|Error Code|Error Message)\s*:[ \t]*(.*?)`?$",
    re.MULTILINE | re.IGNORECASE,
)
_KV_RE = re.compile(
    rf"\bCode\s*[=:]\s*\\?\"({_CODE})\\?\"\s*,?\s*Message\s*[=:]\s*\\?\"((?:[^\"\\]|\\.)*)\\?\"",
    re.IGNORECASE,
)
_JS_CODE_RE = re.compile(rf"\bcode:\s*'({_CODE})'")
_XML_ERROR_RE = re.compile(
    rf"<Code>\s*({_CODE})\s*</Code>\s*(?:<Message>(.*?)(?:</Message>|$))?", re.DOTALL
)
_JS_HEAD_RE = re.compile(r"\bRestError:\s*(.+)")
_WITH_ERROR_RE = re.compile(rf"with error:\s*({_CODE}):\s*(.+)")
_STATUS_RES = (
    re.compile(r"\bRESPONSE\s+([1-5]\d\d)\b"),
    re.compile(r"\bStatus(?:\s*Code)?\s*[=:]\s*([1-5]\d\d)\b", re.IGNORECASE),
    re.compile(r"\bstatusCode['\"]?\s*[:=]\s*([1-5]\d\d)\b"),
    re.compile(r"\bstatus(?: code)?\s+([1-5]\d\d)\b", re.IGNORECASE),
    re.compile(r"\bHTTP(?:/\d(?:\.\d)?)?\s+([1-5]\d\d)\b"),
    re.compile(r"\bHTTPStatusCode:\s*([1-5]\d\d)\b"),
    re.compile(r"\bError type:\s*([1-5]\d\d)\b"),
    re.compile(r"\(CODE:\s*([1-5]\d\d)\)", re.IGNORECASE),
    re.compile(r"\bfailed with (?:status code )?([1-5]\d\d)\b"),
    re.compile(r"\bHttpError:\s*([1-5]\d\d)\b"),
    re.compile(r"returned an error: \(([1-5]\d\d)\)"),
    re.compile(
        r"(?:^|\s)\(([45]\d\d)\)\s+(?:Message|Conflict|Precondition|Too Many|Not Found|Bad Request|Forbidden|Internal|Server|Service|Gateway)"
    ),
    re.compile(
        r"\b([1-5]\d\d)\s+\(?(?:Conflict|Precondition Failed|Too Many Requests|Not Found|"
        r"Bad Request|Forbidden|Internal Server Error|Service Unavailable|Bad Gateway|"
        r"Gateway Timeout)\b"
    ),
)
_STATUS_PHRASE_RES = (
    re.compile(r"\bStatus\s*Code\s*:\s*([A-Za-z ]+?)\s*$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"invalid status(?: code)? '([A-Za-z ]+)'"),
    re.compile(r"with status: '([A-Za-z ]+)'"),
    re.compile(r"^[ \t]*Status:[ \t]*([A-Za-z][A-Za-z ]+?)[ \t]*$", re.MULTILINE),
    re.compile(r"\bStatus:\s*[1-5]\d\d\s*\(([A-Za-z ]+)\)"),
)
_KNOWN_WORD_RE = re.compile(r"\b[A-Z][A-Za-z]{5,}\b")


_LABEL_LINE_RE = re.compile(r"^\s*[A-Z][A-Za-z]+(?: [A-Za-z]+){0,3}\s*:(?:\s|$)")


def _multiline_message(text: str, start: int) -> str:
    """A ``Message:`` value runs until a blank line or the next ``Label:`` line.

    Only the lines of the message are read (at most what is kept of it): a log with thousands
    of ``Message:`` lines must not be re-read from each one to its end.
    """
    lines: list[str] = []
    size = 0
    pos = start
    while pos <= len(text) and size <= _MAX_MESSAGE:
        cut = text.find("\n", pos)
        end = len(text) if cut < 0 else cut
        line = text[pos:end]
        if lines and (not line.strip() or _LABEL_LINE_RE.match(line) or _HEADLINE_RE.match(line)):
            break
        lines.append(line.strip())
        size += len(line) + 1
        if cut < 0:
            break
        pos = cut + 1
    return " ".join(lines).strip()


def _text_pairs(text: str) -> list[tuple[int, str, str]]:
    """(position, code, message) for every code the text states outside JSON."""
    pairs: list[tuple[int, str, str]] = []
    for m in _HEADLINE_RE.finditer(text):
        pairs.append((m.start(), m.group(1), m.group(2).strip()))
    pending_code: tuple[int, str] | None = None
    for m in _KEY_LINE_RE.finditer(text):
        key = m.group(1).lower().replace(" ", "")
        if key in ("code", "errorcode"):
            value = m.group(2).strip().strip("\"'")
            if re.fullmatch(_CODE, value):
                if pending_code is not None:
                    pairs.append((pending_code[0], pending_code[1], ""))
                pending_code = (m.start(), value)
        elif pending_code is not None:
            pairs.append((pending_code[0], pending_code[1], _multiline_message(text, m.start(2))))
            pending_code = None
    if pending_code is not None:
        pairs.append((pending_code[0], pending_code[1], ""))
    for m in _KV_RE.finditer(text):
        pairs.append((m.start(), m.group(1), m.group(2).replace('\\"', '"')))
    for m in _WITH_ERROR_RE.finditer(text):
        pairs.append((m.start(), m.group(1), m.group(2).strip()))
    for m in _CODE_EQ_RE.finditer(text):
        pairs.append((m.start(), m.group(1), m.group(2).strip().strip('"')))
    for m in _ERROR_TYPE_RE.finditer(text):
        pairs.append((m.start(), m.group(1), (m.group(2) or "").strip()))
    for m in _CODE_COLON_RE.finditer(text):
        # "InvalidDeployment: The deployment…" lines; only codes the classifier knows, or any
        # English "Word: text" line would read as an error code.
        if m.group(1).lower() in KNOWN_CODES:
            pairs.append((m.start(), m.group(1), m.group(2).strip()))
    for m in _XML_ERROR_RE.finditer(text):
        pairs.append((m.start(), m.group(1), " ".join((m.group(2) or "").split())[:_MAX_MESSAGE]))
    js_code = _JS_CODE_RE.search(text)
    if js_code:
        head = _JS_HEAD_RE.search(text)
        pairs.append(
            (
                head.start() if head else js_code.start(),
                js_code.group(1),
                head.group(1).strip() if head else "",
            )
        )
    pairs.sort(key=lambda p: p[0])
    return pairs


def _status_from_text(text: str) -> int | None:
    for rx in _STATUS_RES:
        m = rx.search(text)
        if m:
            return int(m.group(1))
    for rx in _STATUS_PHRASE_RES:
        m = rx.search(text)
        if m:
            status = _reason_status(m.group(1))
            if status is not None:
                return status
    return None


def _dedupe(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop repeats of one error (az prints ``(Code) msg`` and ``Code:``/``Message:`` both)."""
    out: list[tuple[str, str]] = []
    for code, message in pairs:
        for i, (c, m) in enumerate(out):
            if c.lower() == code.lower() and (
                m.startswith(message[:60]) or message.startswith(m[:60])
            ):
                if len(message) > len(m):
                    out[i] = (c, message)
                break
        else:
            out.append((code, message))
    return out


# --- facts --------------------------------------------------------------------------------

_ID_RE = re.compile(r"/subscriptions/[^\s'\"<>,;()\[\]{}\\`]+", re.IGNORECASE)
_NOT_RESOURCE_RE = re.compile(
    r"/(?:operations|operationStatuses|operationResults|asyncOperations|events)/", re.IGNORECASE
)
_OP_URL_RE = re.compile(
    r"https?://[^\s'\"<>\\]+?/(?:operations|operationStatuses|operationresults|"
    r"asyncoperations)/[^\s'\"<>\\]+",
    re.IGNORECASE,
)
_ETAG_VALUE = r"(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)'|(\S+))"
_SUBMITTED_RE = re.compile(
    rf"\b(?:submitted_?etag|sent_?etag|etag_?sent|if_?match|baseline_?etag)\s*[=:]\s*{_ETAG_VALUE}",
    re.IGNORECASE,
)
_LIVE_RE = re.compile(
    rf"\b(?:live_?etag|current_?etag|etag_?live|server_?etag)\s*[=:]\s*{_ETAG_VALUE}",
    re.IGNORECASE,
)
_IF_MATCH_RE = re.compile(
    r"if-match header\s+(?P<sent>W/\\*\"[^\"\\]*\\*\"|\\*\"[^\"\\]*\\*\"|'[^']*'|\S+)\s+does not "
    r"match etag\s+(?P<live>W/\\*\"[^\"\\]*\\*\"|\\*\"[^\"\\]*\\*\"|'[^']*'|\S+)",
    re.IGNORECASE,
)
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CORRELATION_RE = re.compile(
    rf"(?:correlation[ _-]?(?:request[ _-]?)?id|x-ms-correlation-request-id)\W{{0,4}}({_GUID})",
    re.IGNORECASE,
)
_REQUEST_RE = re.compile(
    rf"(?:(?<!correlation-)request[ _-]?id|x-ms-request-id|serviceRequestId|"
    rf"client[ _-]?request[ _-]?id|tracking[ _-]?id|activity[ _-]?id)\W{{0,4}}({_GUID})",
    re.IGNORECASE,
)
_HEADER_RE = re.compile(
    r"^[ \t]*(?:[-*][ \t]*)?[\"']?(Retry-After|x-ms-retry-after-ms|retry-after-ms|Azure-AsyncOperation|"
    r"Location)[\"']?\s*[:=]\s*[\"'\[]*([^\"'\]\s]+)",
    re.IGNORECASE | re.MULTILINE,
)
_DEPLOYMENT_RES = (
    re.compile(r"(?:edit or replace|replace) deployment '([^']+)'", re.IGNORECASE),
    re.compile(r"\bdeployment '([^']+)'", re.IGNORECASE),
    re.compile(r"/providers/Microsoft\.Resources/deployments/([^/\s'\"?]+)", re.IGNORECASE),
    re.compile(r"\"deploymentName\"\s*:\s*\"([^\"]+)\""),
)
_VM_SIZE_RE = re.compile(r"\b((?:Standard|Basic)_[A-Za-z0-9_]+)\b")


_TF_SCOPE_RE = re.compile(
    r"\(Subscription: \"([^\"]+)\"\s*Resource Group Name: \"([^\"]+)\"", re.IGNORECASE
)


def _resource_ids(text: str) -> tuple[ResourceId, ...]:
    seen: dict[str, ResourceId] = {}
    # Terraform's azurerm 3+/4 prints the ID as labelled parts; the group is what it names.
    for m in _TF_SCOPE_RE.finditer(text):
        try:
            rid = ResourceId(m.group(1), m.group(2))
            parse_resource_id(rid.format())
        except InvalidResourceId:
            continue
        seen.setdefault(rid.key, rid)
    for m in _ID_RE.finditer(text):
        raw = m.group(0).rstrip(".:/")
        raw = raw.split("?", 1)[0]
        cut = _NOT_RESOURCE_RE.search(raw)
        if cut:
            if raw[cut.start() :].lower().startswith("/events/"):
                raw = raw[: cut.start()]
            else:
                continue
        try:
            rid = parse_resource_id(raw)
        except InvalidResourceId:
            continue
        if "..." in rid.key or "{" in raw:
            continue
        seen.setdefault(rid.key, rid)
    return tuple(seen.values())


def _clean_etag(value: str) -> str:
    # However many times the body was JSON-escaped, an ETag's quotes are plain quotes.
    return re.sub(r'\\+"', '"', value).strip().rstrip(".,")


def _etags(text: str) -> tuple[str | None, str | None]:
    m = _IF_MATCH_RE.search(text)
    if m:
        return _clean_etag(m.group("sent")), _clean_etag(m.group("live"))
    sent = _SUBMITTED_RE.search(text)
    live = _LIVE_RE.search(text)

    def value(match: re.Match[str] | None) -> str | None:
        if match is None:
            return None
        raw = next(g for g in match.groups() if g is not None)
        return _clean_etag(raw)

    return value(sent), value(live)


def _unique(values: Iterator[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.lower() for v in values))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        try:
            if name.lower() == "retry-after":
                return max(0.0, float(value))
            if name.lower() in ("retry-after-ms", "x-ms-retry-after-ms"):
                return max(0.0, float(value) / 1000.0)
        except ValueError:
            continue
    return None


_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.MULTILINE))
    for label, pattern in (
        # Terraform by the shape of its diagnostics, not by the word: a resource address, a
        # .tf location, the box, go-azure-sdk's status line, azurerm 2/3's "Error: creating X:
        # pkg.Client#Method:" line.
        (
            "terraform",
            r"\bwith (?:azurerm|azapi|azuread|azurestack)_\w+\.|\bon [\w./\\-]+\.tf line \d+"
            r"|^[ \t]*[│╷][ \t]*Error:"
            r"|unexpected status [1-5]\d\d \([1-5]\d\d [A-Za-z ]+\) with (?:error|response)"
            r"|^[ \t]*Error: \w+ing\b[^\n]*\b\w+Client#\w+:",
        ),
        (
            "python",
            r"HttpResponseError|azure\.core\.exceptions|ResourceExistsError|ResourceNotFoundError",
        ),
        ("dotnet", r"RequestFailedException|^\s*ErrorCode:.*$\s*^\s*Content:|Status: [1-5]\d\d \("),
        (
            "powershell",
            r"Status Code:\s*[A-Za-z]|ErrorMessage:|Microsoft\.Azure\.Commands|\bNew-Az|\bSet-Az",
        ),
        ("js", r"RestError"),
        ("pulumi", r"\bazure-native:\w+:\w+\b"),
        ("go", r"autorest/azure|azcore|ERROR CODE:|\bRESPONSE [1-5]\d\d:|Original Error:"),
        ("az", r"^\s*(?:ERROR:\s*)?\(\w+\)|^\s*Code:\s*\w+\s*$"),
    )
)


def _detect_format(raw: str, text: str, found: _Found) -> str:
    """Which tool printed the error, by the structure it prints (the raw text keeps
    Terraform's box; the normalised text has the rest)."""
    for label, pattern in _FORMATS:
        if pattern.search(raw if label == "terraform" else text):
            return label
    if found.event:
        return "activity_log"
    if found.errors:
        return "json"
    return "text"


# Errors of other clouds and APIs that share ARM's words ("Conflict", "the object has been
# modified"): said to be what they are, not classified as ARM's.
_FOREIGN: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a Kubernetes API",
        re.compile(
            r"Operation cannot be fulfilled on [\w.-]+ \\?\"|Error from server \(\w+\)"
            r"|the object has been modified; please apply your changes to the latest version"
            r"|\bkubectl\b|\b[\w.-]+\.k8s\.io\b"
        ),
    ),
    ("a Google Cloud", re.compile(r"\(gcloud\.[\w.-]+\)|\bgoogleapis\.com\b|\bgcloud\b")),
    (
        "an AWS",
        re.compile(
            r"An error occurred \(\w+\) when calling the \w+ operation|\barn:aws:"
            r"|\bamazonaws\.com\b|\bbotocore\b"
        ),
    ),
)
_ARM_EVIDENCE_RE = re.compile(
    r"/subscriptions/|management\.azure\.com|\bazure|\baz (?:vm|aks|group|network|deployment|"
    r"resource|storage)\b|\bMicrosoft\.[A-Z][A-Za-z]+/|aka\.ms/|\bx-ms-",
    re.IGNORECASE,
)


def _foreign_source(text: str, root: ErrorDetail | None = None) -> str | None:
    """The other API an error comes from, when it shows one and nothing of ARM's."""
    if _ARM_EVIDENCE_RE.search(text):
        return None
    if root is not None and any(n.code.lower() in KNOWN_CODES for n in root.walk()):
        return None
    return next((name for name, rx in _FOREIGN if rx.search(text)), None)


def foreign_source(text: str) -> str | None:
    """``a Kubernetes API``, ``a Google Cloud`` or ``an AWS`` when ``text`` is that kind of
    error with no sign of Azure Resource Manager in it, else None."""
    return _foreign_source(text)


# --- entry point --------------------------------------------------------------------------


def parse_error_text(raw: str) -> ParsedError | None:
    """Read a pasted error; ``None`` when the text carries no error at all."""
    if len(raw) > 2 * _WINDOW:
        raw = raw[:_WINDOW] + "\n…\n" + raw[-_WINDOW:]
    text = _normalise(raw)
    found = _Found()
    for value in _json_values(text):
        _collect_json(value, found)
    if not found.errors and '\\"' in text:
        # JSON escaped inside another string (a log line, a Terraform message): unescape once.
        for value in _json_values(text.replace('\\"', '"').replace("\\\\", "\\")):
            _collect_json(value, found)
    if not found.errors:
        whole = _loads_maybe(text) if text.strip().startswith('"') else None
        if isinstance(whole, str):
            for value in _json_values(whole):
                _collect_json(value, found)

    pairs = _dedupe([(c, m[:_MAX_MESSAGE]) for _, c, m in _text_pairs(text)[:_MAX_PAIRS]])
    # A message that is itself JSON was read as a body above; keep only its code here.
    pairs = [(c, "" if m.lstrip().startswith(("{", "[")) else m) for c, m in pairs]
    root = _assemble(pairs, found.errors)
    # Codes seen only in a body too broken to decode (cut off, re-wrapped, escaped twice).
    loose = _loose_codes(text)
    residue = ""
    if root is None:
        if loose:
            root = ErrorDetail(
                loose[0], _trim(text), details=tuple(ErrorDetail(c, "") for c in loose[1:])
            )
        elif _is_bare_error(text, found):
            root = ErrorDetail("", _trim(text))
        else:
            return None
    else:
        present = {n.code.lower() for n in root.walk()}
        missing = [c for c in loose if c.lower() not in present]
        if missing:
            root = dataclasses.replace(
                root, details=(*root.details, *(ErrorDetail(c, "") for c in missing))
            )
        if _JSONISH_CODE_RE.search(text) and not found.errors:
            residue = _trim(text)

    headers = {m.group(1): m.group(2) for m in _HEADER_RE.finditer(text)}
    status = found.status or _status_from_text(text) or _PHRASES.get(root.code.lower())
    facts = _facts(root, text, status, headers, _detect_format(raw, text, found))
    return dataclasses.replace(facts, residue=residue, bodies=tuple(found.bodies))


def _facts(
    root: ErrorDetail, text: str, status: int | None, headers: Mapping[str, str], fmt: str
) -> ParsedError:
    decoded = " ".join(f"{n.code} {n.message}" for n in root.walk())
    everything = text + "\n" + decoded
    sent, live = _etags(decoded + "\n" + text)
    op_url = None
    for name, value in headers.items():
        if name.lower() == "azure-asyncoperation":
            op_url = value
    if op_url is None:
        m = _OP_URL_RE.search(everything)
        op_url = m.group(0).rstrip(".,;)") if m else None
    deployment = next((m.group(1) for rx in _DEPLOYMENT_RES if (m := rx.search(everything))), None)
    size = _VM_SIZE_RE.search(everything) if re.search(r"resiz|size", everything, re.I) else None
    return ParsedError(
        error=root,
        status=status,
        format=fmt,
        resource_ids=_resource_ids(everything),
        operation_url=op_url,
        etag_submitted=sent,
        etag_live=live,
        correlation_ids=_unique(m.group(1) for m in _CORRELATION_RE.finditer(everything)),
        request_ids=_unique(m.group(1) for m in _REQUEST_RE.finditer(everything)),
        retry_after=_retry_after(headers),
        deployment_name=deployment,
        vm_size=size.group(1) if size else None,
        headers=dict(headers),
        text=text,
    )


def body_facts(whole: ParsedError, index: int) -> ParsedError:
    """The facts of one of the error bodies in a paste that holds several (an Activity Log
    export): that body's own resource, operation, ETags and status, not the whole paste's."""
    body = whole.bodies[index]
    error = body.error
    own = " ".join(f"{n.code} {n.message}" for n in error.walk())
    if body.resource:
        own += f"\n{body.resource}"
    status = body.status or _PHRASES.get(error.code.lower()) or whole.status
    return dataclasses.replace(
        _facts(error, own, status, {}, whole.format), bodies=(whole.bodies[index],)
    )


def _assemble(pairs: list[tuple[str, str]], json_errors: list[ErrorDetail]) -> ErrorDetail | None:
    """One root error: the outermost stated code, with JSON trees and other codes beneath."""
    if not pairs and not json_errors:
        return None
    if json_errors:
        body = json_errors[0]
        extra = json_errors[1:]
        if pairs and pairs[0][0].lower() != body.code.lower():
            code, message = pairs[0]
            rest = [ErrorDetail(c, m) for c, m in pairs[1:]]
            tree = ErrorDetail(code, message or body.message, details=(body, *extra, *rest))
            return _drop_repeats(tree)
        rest = [ErrorDetail(c, m) for c, m in pairs[1:]]
        message = body.message or (pairs[0][1] if pairs else "")
        return _drop_repeats(
            dataclasses.replace(body, message=message, details=(*body.details, *extra, *rest))
        )
    code, message = pairs[0]
    return _drop_repeats(
        ErrorDetail(code, message, details=tuple(ErrorDetail(c, m) for c, m in pairs[1:]))
    )


def _drop_repeats(root: ErrorDetail) -> ErrorDetail:
    """Drop details that repeat an error already in the tree (az prints each one twice)."""
    stated = {n.code.lower() for n in root.walk() if n.message.strip() or n.details}
    seen = {(root.code.lower(), root.message.strip())}

    def walk(node: ErrorDetail) -> ErrorDetail:
        kept: list[ErrorDetail] = []
        for d in node.details:
            key = (d.code.lower(), d.message.strip())
            if key in seen or (not key[1] and not d.details and key[0] in stated):
                continue
            seen.add(key)
            kept.append(walk(d))
        return dataclasses.replace(node, details=tuple(kept))

    return walk(root)


def _loose_codes(text: str) -> list[str]:
    """Codes from ``"code": "X"`` fragments and known code words, in order of appearance."""
    # Big pastes are logs: the error is near the start or near the end.
    window = text if len(text) <= 400_000 else text[:200_000] + "\n" + text[-200_000:]
    found: list[tuple[int, str]] = [
        (m.start(), m.group(1)) for m in _JSONISH_CODE_RE.finditer(window)
    ]
    found += [
        (m.start(), m.group(0))
        for m in _KNOWN_WORD_RE.finditer(window)
        if m.group(0).lower() in KNOWN_CODES
    ]
    found += [(m.start(), m.group(1)) for m in _CODE_PAREN_RE.finditer(window)]
    seen: dict[str, str] = {}
    for _, code in sorted(found):
        seen.setdefault(code.lower(), code)
    return list(seen.values())


def _is_bare_error(text: str, found: _Found) -> bool:
    """No code anywhere: still an error when it has a failure status, an error word, an
    exception name or words the classifier recognises. Only text with none of these (a
    success log, prose) is not an error."""
    status = found.status or _status_from_text(text)
    if status is not None and status >= 400:
        return True
    if _ERROR_WORD_RE.search(text) is not None:
        return True
    return classify(None, "", _trim(text)).kind is not ConflictKind.UNKNOWN


_ERROR_WORD_RE = re.compile(
    r"\b(?:error|errors|exception|failed|failure|fails|denied|forbidden|unauthori[sz]ed"
    r"|not authori[sz]ed|invalid|cannot|can ?not|could not|unable to|not found"
    r"|timed out|timeout|throttl\w*|refused|reset by peer|not allowed|not permitted|locked"
    r"|is busy|not met|deadline exceeded|panic)\b"
    r"|\b\w+(?:Exception|Error)\b",
    re.IGNORECASE,
)


def _trim(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 2000 else flat[:2000] + "…"
