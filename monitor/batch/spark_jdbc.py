"""How Spark reaches a stream's Postgres table: the JDBC driver's jar, and a connection
that keeps the password out of every place Spark shows.

The driver is PostgreSQL's JDBC jar (Debian's ``libpostgresql-jdbc-java``, which
``scripts/setup.sh`` installs), at ``$MONITOR_POSTGRES_JDBC_JAR`` (default
:data:`DEFAULT_JAR`). The batch stage's Spark session ships it to the executors with
``spark.jars``; set the variable to an empty string to leave ``spark.jars`` to your own
Spark settings (which must then provide the driver).

The JDBC URL holds only the host, port and database. The user, the password and the
URL's other parameters go as connection properties: Spark redacts a property whose name
matches ``spark.redaction.regex`` (``password`` among them) in its plans, its UI and its
logs, while a URL would be shown whole wherever the relation is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

JAR_ENV = "MONITOR_POSTGRES_JDBC_JAR"
DEFAULT_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java
DRIVER_CLASS = "org.postgresql.Driver"
# SQLAlchemy's Postgres URL parameters that libpq takes but PgJDBC names otherwise, or
# not at all (a socket directory as host, say): left out, with the rest passed on.
_NOT_FOR_JDBC = frozenset({"host", "hostaddr", "passfile", "service", "target_session_attrs"})


def jdbc_jar(environ: Mapping[str, str] | None = None) -> str | None:
    """The JDBC jar to give the session (None: leave ``spark.jars`` alone)."""
    env = os.environ if environ is None else environ
    path = env.get(JAR_ENV, DEFAULT_JAR)
    return path or None


def missing_driver_hint(environ: Mapping[str, str] | None = None) -> str:
    """What to do when the session has no PostgreSQL JDBC driver."""
    jar = jdbc_jar(environ)
    where = (f"{JAR_ENV} is empty, so spark.jars must name it" if jar is None else
             f"{jar} ({JAR_ENV}) {'exists' if Path(jar).exists() else 'does not exist'}")
    return ("the Spark engine reads Postgres tables through PostgreSQL's JDBC driver, which "
            f"this Spark session cannot load ({where}): install Debian's "
            "libpostgresql-jdbc-java (bash scripts/setup.sh does) or point "
            f"{JAR_ENV} at the driver's jar, then start the run again")


@dataclass(frozen=True)
class JdbcConnection:
    """A Postgres database as Spark's JDBC source takes it."""

    url: str  # jdbc:postgresql://host:port/database, no credentials
    properties: dict[str, str] = field(repr=False)  # user, password, the URL's parameters

    @classmethod
    def of(cls, url: sa.URL) -> JdbcConnection:
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"not a Postgres URL: {url.render_as_string(hide_password=True)}")
        host = url.host or "localhost"
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        port = f":{url.port}" if url.port else ""
        properties = {"user": url.username or os.environ.get("USER", "postgres")}
        if url.password is not None:
            properties["password"] = url.password
        for name, values in url.query.items():
            if name not in _NOT_FOR_JDBC:
                properties[name] = values if isinstance(values, str) else values[-1]
        return cls(f"jdbc:postgresql://{host}{port}/{url.database or ''}", properties)


__all__ = ["DEFAULT_JAR", "DRIVER_CLASS", "JAR_ENV", "JdbcConnection", "jdbc_jar",
           "missing_driver_hint"]
