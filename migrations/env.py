"""Alembic environment for the monitor database.

``monitor.storage.migrate`` hands over an open connection in
``config.attributes["connection"]``; without one (the ``alembic`` command line with
``-c`` pointing at an ini of your own) the URL comes from ``sqlalchemy.url`` or
``MONITOR_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from monitor.storage.database import Database
from monitor.storage.database_url import database_url_from_env, normalize_url
from monitor.storage.migrate import include_name
from monitor.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite has little ALTER
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url_from_env()


def run_offline() -> None:
    """Write the SQL to standard output instead of running it (``alembic upgrade --sql``)."""
    context.configure(url=normalize_url(_url()), target_metadata=target_metadata,
                      literal_binds=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    with Database(_url()) as database, database.begin() as conn:
        _configure(conn)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
