"""Which database, how its URL is shown, and what an unreachable one says."""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

import pytest

from monitor.storage.database import Database, DatabaseUnavailableError
from monitor.storage.database_url import (
    DEFAULT_DATABASE_URL,
    database_url_from_env,
    mask_url,
    normalize_url,
)
from monitor.storage.migrate import upgrade

PASSWORD = "Sup3r-s3cret_pw"


def test_the_environment_variable_picks_the_database() -> None:
    assert database_url_from_env({}) == DEFAULT_DATABASE_URL == "sqlite:///monitor.sqlite"
    assert database_url_from_env({"MONITOR_DATABASE_URL": ""}) == DEFAULT_DATABASE_URL
    url = "postgresql+psycopg://u@db/monitor"
    assert database_url_from_env({"MONITOR_DATABASE_URL": url}) == url


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u:p@db/m") == "postgresql+psycopg://u:p@db/m"
    assert normalize_url("postgres://u@db/m") == "postgresql+psycopg://u@db/m"
    assert normalize_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://monitor:{PASSWORD}@db.internal:5432/monitor",
    f"postgresql+psycopg://monitor@db.internal/monitor?password={PASSWORD}&sslmode=require",
    f"postgresql+psycopg://monitor:{PASSWORD.replace('_', '%40')}@db.internal/monitor",
])
def test_masked_urls_keep_no_secret(url: str) -> None:
    masked = mask_url(url)
    assert "db.internal" in masked and "***" in masked
    assert PASSWORD not in masked and PASSWORD.replace("_", "%40") not in masked
    assert "@" not in PASSWORD  # the %40 case above decodes to a password with an @


def test_a_malformed_url_is_refused_without_echoing_its_password() -> None:
    with pytest.raises(ValueError, match="is not a database URL") as caught:
        normalize_url(f"postgres ql://monitor:{PASSWORD}@db:5432/x")
    assert PASSWORD not in str(caught.value)


def test_an_unreachable_server_names_host_and_port_and_hides_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql+psycopg://monitor:{PASSWORD}@127.0.0.1:1/monitor"
    caplog.set_level(logging.DEBUG)  # everything any library logs, SQLAlchemy's pool too
    with pytest.raises(DatabaseUnavailableError) as caught:
        Database(url).check()
    with pytest.raises(DatabaseUnavailableError) as caught_by_migrations:
        upgrade(url)

    for error in (caught.value, caught_by_migrations.value):
        message = str(error)
        assert "host 127.0.0.1, port 1" in message
        assert "monitor:***@127.0.0.1:1/monitor" in message
        assert "Check that the server is running" in message
        assert "MONITOR_DATABASE_URL" in message
        shown = "".join(traceback.format_exception(error)) + repr(error)
        assert PASSWORD not in shown
    assert caplog.records, "the failure should be logged"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in logging.Formatter().format(record)


def test_an_unopenable_sqlite_file_says_which_and_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "monitor.sqlite"
    with pytest.raises(DatabaseUnavailableError,
                       match=f"(?s)SQLite file {re.escape(str(missing))}.*directory exists"):
        Database(f"sqlite:///{missing}").check()


def test_the_database_repr_is_masked() -> None:
    database = Database(f"postgresql+psycopg://monitor:{PASSWORD}@127.0.0.1:1/monitor")
    assert PASSWORD not in repr(database) and PASSWORD not in repr(database.engine)
