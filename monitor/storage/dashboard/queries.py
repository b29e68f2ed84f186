"""Every dashboard query over one database, by subject.

>>> import tempfile, pathlib
>>> from monitor.storage.migrate import upgrade
>>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'monitor.sqlite'}"
>>> _ = upgrade(url)
>>> with DashboardQueries.open(url) as queries:
...     queries.overview.metrics(), queries.catalog.has_data()
([], False)
"""

from __future__ import annotations

from monitor.storage.dashboard.alerts import AlertQueries
from monitor.storage.dashboard.assertions import AssertionQueries
from monitor.storage.dashboard.catalog import CatalogQueries
from monitor.storage.dashboard.dead_letters import DeadLetterQueries
from monitor.storage.dashboard.drift import DriftQueries
from monitor.storage.dashboard.overview import OverviewQueries
from monitor.storage.dashboard.performance import PerformanceQueries
from monitor.storage.dashboard.read_only import ReadOnly
from monitor.storage.dashboard.values import ValueQueries
from monitor.storage.database import Database


class DashboardQueries:
    """The dashboard's reads over one database; each call is one short read-only session
    (see :mod:`~monitor.storage.dashboard.read_only`)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        read = ReadOnly(database)
        self.catalog = CatalogQueries(read)
        self.overview = OverviewQueries(read)
        self.values = ValueQueries(read)
        self.drift = DriftQueries(read)
        self.performance = PerformanceQueries(read)
        self.assertions = AssertionQueries(read)
        self.alerts = AlertQueries(read)
        self.dead_letters = DeadLetterQueries(read)

    @classmethod
    def open(cls, url: str) -> DashboardQueries:
        return cls(Database(url))

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> DashboardQueries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DashboardQueries({self.database.display_url!r})"
