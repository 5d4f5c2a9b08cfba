"""Open a store from the one string users configure, and print that string safely.

* a filesystem path, or ``sqlite:///relative/path`` / ``sqlite:////absolute/path`` → SQLite
* ``postgresql://…`` or ``postgres://…`` (libpq URI) → PostgreSQL. Two parameters are
  armguard's own and are not passed to libpq:

  * ``?schema=name`` picks the schema the store's tables live in (default ``armguard``).
  * ``?synchronous_commit=off`` (opt-in; default: the server's setting, normally ``on``) lets
    a commit return before its WAL reaches disk, which takes the disk flush off every claim
    and completion. The price: if the *database server* crashes, its last commits (up to
    about three ``wal_writer_delay``, 600 ms by default) are gone although workers were told
    they succeeded — a lease a worker is acting on may be forgotten and handed out again, so
    two workers may write one resource until the first one's lease check fails. The ETag guard
    still stops the stale write, but the key lease no longer does. Use it only where a
    duplicate write attempt after a database crash is acceptable. ``local`` is also accepted
    (flush locally, do not wait for synchronous replicas).
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

        conninfo, schema, synchronous_commit = _split_own_params(url)
        return PostgresStore(
            conninfo, clock=clock, schema=schema, synchronous_commit=synchronous_commit
        )
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


SYNCHRONOUS_COMMIT = ("on", "off", "local")


def _split_own_params(url: str) -> tuple[str, str, str | None]:
    """The libpq URL without armguard's parameters, the schema and ``synchronous_commit``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if len(schemas) > 1:
        raise ValueError("give the store's schema once (…?schema=name)")
    sync = [v for k, v in query if k == "synchronous_commit"]
    if len(sync) > 1:
        raise ValueError("give synchronous_commit once")
    if sync and sync[0] not in SYNCHRONOUS_COMMIT:
        raise ValueError(
            f"synchronous_commit must be one of {', '.join(SYNCHRONOUS_COMMIT)}, not {sync[0]!r}"
        )
    rest = urlencode([(k, v) for k, v in query if k not in ("schema", "synchronous_commit")])
    return (
        urlunsplit(parts._replace(query=rest)),
        (schemas[0] if schemas else "armguard"),
        (sync[0] if sync else None),
    )


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
