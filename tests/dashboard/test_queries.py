"""The dashboard queries on small hand-made databases: edge cases of the overview."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from monitor.storage.dashboard_queries import DashboardQueries
from monitor.storage.dashboard_records import NO_DATA
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from tests.storage.helpers import latency_spec, window


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'small.sqlite'}"
    upgrade(url)
    return url


def test_a_metric_without_values_has_no_data(url: str) -> None:
    with SqlStore.open(url) as store:
        store.register_metric(latency_spec())
    with DashboardQueries.open(url) as queries:
        [row] = queries.overview()
        assert queries.has_data()
    assert (row.name, row.status, row.value_stage, row.sparkline) == ("latency", NO_DATA,
                                                                       None, ())


def test_values_of_another_stage_are_shown_when_its_own_has_none(url: str) -> None:
    with SqlStore.open(url) as store:
        version = store.register_metric(latency_spec()).version
        store.record_stage_change("latency", version, "batch", by="t", reason="r")
        store.write_windows("latency", version, "research",
                            [window(h, p50=float(h)) for h in range(60)])
    with DashboardQueries.open(url) as queries:
        [row] = queries.overview(spark_windows=48)
    assert (row.stage, row.value_stage, row.status) == ("batch", "research", "ok")
    assert row.headline == "p50"  # no alert rules: the first field
    assert row.sparkline == tuple(float(h) for h in range(12, 60))
    assert row.last_value == 59.0


def test_the_dashboard_cannot_write(results_url: str) -> None:
    with (DashboardQueries.open(results_url) as queries, queries.database.connect() as conn,
          pytest.raises(DBAPIError, match=r"readonly|read-only")):
        conn.exec_driver_sql("DELETE FROM metric_values")
