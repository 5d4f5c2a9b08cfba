"""Which absolute URLs armguard follows with a credential, and how it writes them down.

ARM names operation status monitors by absolute URL (``Azure-AsyncOperation``, ``Location``,
and inside 409 messages). Following one sends the bearer token, so armguard follows only URLs
on the endpoint it was configured with: a message that names another host must not be able to
collect a token. Some resource providers sign their status URLs with query parameters; events
and logs keep the path and ``api-version`` only.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_url", "same_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def same_origin(url: str, endpoint: str) -> bool:
    """True if ``url`` has the endpoint's scheme, host and port (a relative URL always does)."""
    if not url.lower().startswith(("http://", "https://")):
        return True
    mine = _origin(endpoint)
    return mine is not None and _origin(url) == mine


def redact_url(url: str) -> str:
    """The URL with every query parameter but ``api-version`` dropped."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0]
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "api-version"]
    return urlunsplit(parts._replace(query=urlencode(kept)))
