"""Alembic, driven from the installed package: no ``alembic.ini`` in the working directory.

The scripts live in the ``migrations`` package (``migrations/env.py`` and
``migrations/versions/``). Each function opens the database itself, so an unreachable
server raises :class:`~monitor.storage.database.DatabaseUnavailableError` with the
password masked.

To add a revision after changing :mod:`monitor.storage.models`, upgrade a scratch
database to head and let Alembic draft the difference, then review it by hand::

    python -c "from monitor.storage.migrate import draft_revision; \\
               draft_revision('sqlite:///scratch.sqlite', 'add x', rev_id='0004')"
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from monitor.storage.database import Database
from monitor.storage.models import FOREIGN_TABLES, Base


def script_location() -> Path:
    """Where the ``migrations`` package is installed (its ``env.py`` and ``versions/``)."""
    spec = importlib.util.find_spec("migrations")
    for entry in (spec.submodule_search_locations or []) if spec else []:
        location = Path(entry)
        if (location / "env.py").is_file() and (location / "versions").is_dir():
            return location
    raise RuntimeError("the migrations package (env.py and versions/) is not installed; "
                       "reinstall domain-monitor")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


@dataclass(frozen=True)
class Migration:
    """What an upgrade or downgrade did: the revision before and after."""

    before: str | None
    after: str | None
    head: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade(url: str, revision: str = "head") -> Migration:
    """Apply migrations up to ``revision`` (default: the newest)."""
    return _run(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> Migration:
    """Revert migrations down to ``revision`` (``base`` drops every table)."""
    return _run(url, "downgrade", revision)


def current_revision(url: str) -> str | None:
    """The database's revision, or None when no migration was ever applied."""
    with _database(url) as database, database.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_differences(url: str) -> list[Any]:
    """What Alembic sees between the models and the database (empty when they agree)."""
    with _database(url) as database, database.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": include_name,
        })
        return list(compare_metadata(context, Base.metadata))


def draft_revision(url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a revision against a database at head; review it before committing."""
    config = alembic_config()
    with _database(url) as database, database.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only the tables this project owns.

    The results database may also hold upstream event tables the batch stage reads, and
    APScheduler's job table; migrations must neither drop nor report them.
    """
    if type_ != "table":
        return True
    return name in Base.metadata.tables and name not in FOREIGN_TABLES


def _run(url: str, direction: str, revision: str) -> Migration:
    config = alembic_config()
    with _database(url) as database, database.begin() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        if direction == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return Migration(before, after, head_revision())


@contextmanager
def _database(url: str) -> Iterator[Database]:
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
