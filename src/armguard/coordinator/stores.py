"""Open a store from the one string users configure, and print that string safely.

* a filesystem path, or ``sqlite:///relative/path`` / ``sqlite:////absolute/path`` → SQLite
* ``postgresql://…`` or ``postgres://…`` (libpq URI) → PostgreSQL; ``?schema=name`` picks the
  schema the store's tables live in (default ``armguard``) and is not passed to libpq.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from armguard.clock import Clock
from armguard.coordinator.store import Store

__all__ = ["open_store", "redact"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD_KV_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_SECRET_PARAMS = {"password", "sslpassword"}


def open_store(url: str, *, clock: Clock | None = None) -> Store:
    if not isinstance(url, str) or not url.strip():
        raise ValueError("a store URL is required: a file path, sqlite:///path or postgresql://…")
    url = url.strip()
    match = _SCHEME_RE.match(url)
    scheme = match.group(1).lower() if match else None
    if scheme in ("postgresql", "postgres"):
        # Imported on demand: an embedded (SQLite) deployment never loads libpq.
        from armguard.coordinator.postgres_store import PostgresStore  # noqa: PLC0415

        conninfo, schema = _split_schema(url)
        return PostgresStore(conninfo, clock=clock, schema=schema)
    if scheme == "sqlite":
        if not url.lower().startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(
                f"cannot read the SQLite URL {url!r}: write sqlite:///relative/path.db or"
                " sqlite:////absolute/path.db"
            )
        path = url[len("sqlite:///") :]
    elif scheme is not None:
        raise ValueError(
            f"unsupported store URL {redact(url)!r}: use a file path, sqlite:///path or"
            " postgresql://user@host/database"
        )
    else:
        path = url
    from armguard.coordinator.sqlite_store import SqliteStore  # noqa: PLC0415

    return SqliteStore(path, clock=clock)


def _split_schema(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if len(schemas) > 1:
        raise ValueError("give the store's schema once (…?schema=name)")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else "armguard")


def redact(url: str) -> str:
    """The URL with every password replaced by ``***``, for logs and error messages."""
    if not isinstance(url, str):
        return "<not a URL>"
    if not _SCHEME_RE.match(url):
        return _PASSWORD_KV_RE.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return _PASSWORD_KV_RE.sub(r"\1***", re.sub(r"://[^@/]*@", "://***@", url))
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostinfo}"
    query = "&".join(
        f"{k}=***" if k.lower() in _SECRET_PARAMS else pair
        for pair in parts.query.split("&")
        if pair
        for k in [pair.split("=", 1)[0]]
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret; urlunsplit would also fold sqlite:////abs into sqlite://abs
    return urlunsplit(parts._replace(netloc=netloc, query=query))
