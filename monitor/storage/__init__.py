"""Where results, states and the metric catalog are kept: Postgres in production, SQLite embedded.

The stage runners see only the plain records of :mod:`monitor.storage.records` and the
``Protocol`` ports of :mod:`monitor.storage.ports`; both are pure, so this package's
``__init__`` imports nothing (importing a port must not pull in SQLAlchemy).

The SQL side, one idea per module:

- :mod:`~monitor.storage.database_url` — ``MONITOR_DATABASE_URL``, its default, masking;
- :mod:`~monitor.storage.database` — engines and connections with clear errors;
- :mod:`~monitor.storage.types` / :mod:`~monitor.storage.models` — the tables;
- :mod:`~monitor.storage.migrate` — Alembic, run from the installed package;
- :mod:`~monitor.storage.results`, :mod:`~monitor.storage.definitions`,
  :mod:`~monitor.storage.profiles`, :mod:`~monitor.storage.runs`,
  :mod:`~monitor.storage.dead_letters` — repository functions over a connection;
- :mod:`~monitor.storage.store` — :class:`SqlStore`, every port over one database;
- :mod:`~monitor.storage.dashboard` — the dashboard's read-only queries, a module a subject.
"""
