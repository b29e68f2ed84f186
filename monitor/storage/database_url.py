"""Which database: ``MONITOR_DATABASE_URL``, its default, and how a URL is shown.

Read the setting once at the entry point (the CLI does) and pass the URL down; nothing
reads the environment at import time. Secrets never reach a log line or the terminal:
anything that prints a URL prints :func:`mask_url` of it.

>>> mask_url("postgresql+psycopg://monitor:hunter2@db.internal:5432/monitor")
'postgresql+psycopg://monitor:***@db.internal:5432/monitor'
>>> normalize_url("postgres://monitor@db.internal/monitor")
'postgresql+psycopg://monitor@db.internal/monitor'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DATABASE_URL_ENV = "MONITOR_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///monitor.sqlite"  # a file in the working directory
MASK = "***"
SUPPORTED_DRIVERS = ("postgresql+psycopg", "sqlite", "sqlite+pysqlite")

_SECRET_QUERY_KEYS = re.compile(r"pass|secret|token|key", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^:/@?#]*):[^@/?#]*@")
_QUERY_SECRET = re.compile(r"(?P<key>[\w.-]*(?:pass|secret|token|key)[\w.-]*=)[^&#\s]*",
                           re.IGNORECASE)


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``$MONITOR_DATABASE_URL``, or the embedded SQLite default when it is unset or empty."""
    env = os.environ if environ is None else environ
    return env.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def normalize_url(url: str | URL) -> str:
    """The URL with ``postgres://`` and ``postgresql://`` pointed at psycopg 3.

    Raises ValueError, with the password masked, when the text is not a database URL
    or names a database or driver the store does not run on.
    """
    parsed = parse_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"{mask_url(parsed)!r}: the store runs on {' or '.join(SUPPORTED_DRIVERS[:2])} "
            f"URLs, not {parsed.drivername!r}; e.g. postgresql+psycopg://USER:PASSWORD@HOST/DB"
        )
    return parsed.render_as_string(hide_password=False)


def parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(
            f"{mask_url(str(url))!r} is not a database URL; use e.g. "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DBNAME or sqlite:///monitor.sqlite "
            f"(set {DATABASE_URL_ENV} or pass --database-url)"
        ) from None


def mask_url(url: str | URL) -> str:
    """The URL safe to log: password and secret-looking query values replaced by ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return mask_text(str(url))  # not a URL: mask whatever looks like a secret
    query = {
        key: (MASK if _SECRET_QUERY_KEYS.search(key) else value)
        for key, value in parsed.query.items()
    }
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", MASK)  # the query mask comes back URL-encoded


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with URL passwords, secret query values and the given secrets masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def url_secrets(url: str | URL) -> tuple[str, ...]:
    """The secret parts of a URL, to scrub from driver messages before showing them."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return ()
    secrets = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if _SECRET_QUERY_KEYS.search(key):
            secrets.extend([value] if isinstance(value, str) else value)
    return tuple(str(s) for s in secrets if s)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def describe_target(url: str | URL) -> str:
    """Where the URL points, for error messages: host and port, or the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        return "an in-memory SQLite database" if path is None else f"the SQLite file {path}"
    host = parsed.host or "localhost (Unix socket)"
    port = parsed.port or _DEFAULT_PORTS.get(parsed.get_backend_name()) or "default"
    return (f"the {parsed.get_backend_name()} server at host {host}, port {port}, "
            f"database {parsed.database!r}")


_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
