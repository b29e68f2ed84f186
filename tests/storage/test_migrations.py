"""Migrations: they match the models, they round-trip, and they ship with the package."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, insert, inspect

from monitor.storage.database import Database
from monitor.storage.migrate import (
    current_revision,
    downgrade,
    head_revision,
    include_name,
    schema_differences,
    script_location,
    upgrade,
)
from monitor.storage.models import Base, StageChangeRow
from monitor.storage.store import SqlStore
from tests.storage.conftest import throwaway_postgres
from tests.storage.helpers import window

ROOT = Path(__file__).resolve().parents[2]
TABLES = set(Base.metadata.tables)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_models_and_migrations_agree(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    differences = schema_differences(url)
    assert differences == [], (
        "monitor/storage/models.py and migrations/versions/ disagree; write a migration "
        f"(see monitor.storage.migrate.draft_revision): {differences}"
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_agreement_check_sees_a_model_change(kind: str,
                                                 request: pytest.FixtureRequest) -> None:
    """Guard the guard: a column added to a model without a migration is reported."""
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["metric_values"].append_column(Column("quality", Integer, nullable=True))
    database: Database = request.getfixturevalue(f"{kind}_database")
    with database.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_name": include_name})
        differences = compare_metadata(context, changed)
    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("add_column", "metric_values", "quality")]


def test_upgrade_downgrade_upgrade_on_postgres() -> None:
    with throwaway_postgres("monitor_migrations") as url:
        assert current_revision(url) is None
        first = upgrade(url)
        assert (first.before, first.after, first.changed) == (None, head_revision(), True)
        assert not upgrade(url).changed  # running it again does nothing
        with SqlStore.open(url) as store:
            store.write_windows("latency", 1, "batch", [window(0)])

        down = downgrade(url, "base")
        assert (down.before, down.after) == (head_revision(), None)
        assert _tables(url) == {"alembic_version"}

        upgrade(url)
        assert _tables(url) >= TABLES
        assert schema_differences(url) == []
        with SqlStore.open(url) as store:
            assert store.read_values().empty  # the downgrade dropped the old rows


def test_upgrade_downgrade_upgrade_on_sqlite(fresh_sqlite_url: str) -> None:
    upgrade(fresh_sqlite_url)
    downgrade(fresh_sqlite_url, "base")
    assert _tables(fresh_sqlite_url) == {"alembic_version"}
    upgrade(fresh_sqlite_url)
    assert schema_differences(fresh_sqlite_url) == []


def test_tables_of_other_libraries_are_left_alone(fresh_sqlite_url: str) -> None:
    upgrade(fresh_sqlite_url)
    with Database(fresh_sqlite_url) as database, database.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY)")
    assert schema_differences(fresh_sqlite_url) == []
    downgrade(fresh_sqlite_url, "base")
    assert _tables(fresh_sqlite_url) == {"alembic_version", "apscheduler_jobs"}


def test_the_migrations_package_is_installed_with_its_versions() -> None:
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)
    assert {"migrations", "migrations.versions", "monitor.storage"} <= set(packages)
    location = script_location()
    assert (location / "env.py").is_file()
    files = sorted(p.name for p in (location / "versions").glob("0*.py"))
    assert files[0] == "0001_initial.py"
    assert [name.split("_")[0] for name in files][-1] == head_revision()


def _tables(url: str) -> set[str]:
    with Database(url) as database, database.connect() as conn:
        return set(inspect(conn).get_table_names())


LABEL_JOIN_TABLES = {"label_held_predictions", "label_held_labels", "label_join_progress"}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_label_join_tables_come_and_go_with_0006(kind: str, tmp_path: Path) -> None:
    """0006 adds the tables streaming holds predictions and labels in, and its downgrade
    removes exactly them (on a database with rows in them)."""
    with _empty_database(kind, tmp_path) as url:
        _round_trip_0006(url)


@contextmanager
def _empty_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables: a throwaway Postgres one, or a SQLite file."""
    if kind == "postgres":
        with throwaway_postgres("monitor_migrations") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"


def _round_trip_0006(url: str) -> None:
    upgrade(url, "0005")
    before = _tables(url)
    assert not before & LABEL_JOIN_TABLES
    upgrade(url, "0006")
    assert _tables(url) == before | LABEL_JOIN_TABLES
    with Database(url) as database, database.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO label_held_labels (metric, metric_version, partition, \"offset\", "
            "event, label_id, label_time, payload) VALUES ('m', 1, 0, 5, 0, 'p1', 7, '{}')")
    down = downgrade(url, "0005")
    assert (down.before, down.after) == ("0006", "0005")
    assert _tables(url) == before
    upgrade(url)
    assert schema_differences(url) == []
    with Database(url) as database, database.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM label_held_labels").scalar() == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_0008_gives_past_streaming_changes_the_next_window_boundary(kind: str,
                                                                    tmp_path: Path) -> None:
    """Changes made before 0008 into or out of streaming get the first boundary of their
    version's window at or after them; the others none; the downgrade drops the column."""
    with _empty_database(kind, tmp_path) as url:
        _round_trip_0008(url)


def _round_trip_0008(url: str) -> None:
    upgrade(url, "0007")
    with Database(url) as database, database.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO metric_definitions (name, version, spec_id, spec, owner, description, "
            "\"window\", stage, created_at) VALUES ('m', 1, 'x', '{}', '', '', '15m', "
            "'batch', '2026-03-01 00:00:00')")
        for (hour, minute, second), before, after in [
                ((10, 0, 0), None, "research"), ((10, 5, 0), "research", "batch"),
                ((10, 41, 7), "batch", "streaming"), ((12, 0, 0), "streaming", "batch")]:
            changed_at = datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC)
            conn.execute(insert(StageChangeRow).values(
                metric="m", metric_version=1, from_stage=before, to_stage=after,
                changed_at=changed_at, changed_by="ana", reason="r"))
    upgrade(url, "0008")
    with SqlStore.open(url) as store:
        boundaries = [change.effective_from for change in store.stage_history("m")]
    assert boundaries == [None, None, datetime(2026, 3, 1, 10, 45, tzinfo=UTC),
                          datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    down = downgrade(url, "0007")
    assert (down.before, down.after) == ("0008", "0007")
    with Database(url) as database, database.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("stage_changes")}
    assert "effective_from" not in columns


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_forgotten_predictions_table_comes_and_goes_with_0010(kind: str,
                                                                  tmp_path: Path) -> None:
    """0010 adds the table the label join keeps forgotten predictions' ids in, and its
    downgrade removes exactly it (with rows in it)."""
    with _empty_database(kind, tmp_path) as url:
        upgrade(url, "0009")
        before = _tables(url)
        assert "label_forgotten_predictions" not in before
        upgrade(url, "0010")
        assert _tables(url) == before | {"label_forgotten_predictions"}
        with Database(url) as database, database.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO label_forgotten_predictions (metric, metric_version, partition, "
                "\"offset\", event, prediction_id, event_time) VALUES ('m', 1, 0, 5, 0, "
                "'p1', 7)")
        down = downgrade(url, "0009")
        assert (down.before, down.after) == ("0010", "0009")
        assert _tables(url) == before
        upgrade(url)
        assert schema_differences(url) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_0011_adds_the_reminders_examples_and_keeps_the_alerts(kind: str,
                                                               tmp_path: Path) -> None:
    """0011 adds ``alert_states.examples`` (null for an alert stored before it, which the
    dispatcher reads as no ids) and its downgrade drops it, the alert rows kept."""
    with _empty_database(kind, tmp_path) as url:
        upgrade(url, "0010")
        with Database(url) as database, database.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO alert_states (metric, metric_version, stage, rule, segment, "
                "status, consecutive, detail, severity, labels, updated_at) VALUES "
                "('m', 1, 'batch', 'r', '*', 'firing', 2, '0.2 > 0.1', 'warning', '{}', "
                "'2026-03-01 00:00:00')")
        upgrade(url, "0011")
        with Database(url) as database, database.begin() as conn:
            assert conn.exec_driver_sql(
                "SELECT status, detail, examples FROM alert_states").one() == (
                "firing", "0.2 > 0.1", None)
            conn.exec_driver_sql("UPDATE alert_states SET examples = 'example ids 7'")
        assert schema_differences(url) == []
        down = downgrade(url, "0010")
        assert (down.before, down.after) == ("0011", "0010")
        with Database(url) as database, database.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("alert_states")}
            assert conn.exec_driver_sql("SELECT status FROM alert_states").scalar() == "firing"
        assert "examples" not in columns
        upgrade(url)
        assert schema_differences(url) == []
