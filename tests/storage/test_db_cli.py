"""`monitor db upgrade/current/downgrade` on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli.main import cli
from monitor.storage.database_url import sqlite_path
from monitor.storage.migrate import head_revision
from tests.storage.conftest import throwaway_postgres

PASSWORD = "cli-s3cret-pw"


def db(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["db", *args], env=env, input=input,
                              catch_exceptions=False)


def test_upgrade_current_and_downgrade_on_sqlite(fresh_sqlite_url: str) -> None:
    env = {"MONITOR_DATABASE_URL": fresh_sqlite_url}
    head = head_revision()

    current = db("current", env=env)
    assert f"database: {fresh_sqlite_url}" in current.output
    assert "yet: run `monitor db upgrade`" in current.output
    path = sqlite_path(fresh_sqlite_url)
    assert path is not None and not path.exists()
    first = db("upgrade", env=env)
    assert first.exit_code == 0, first.output
    assert f"upgraded from an empty database (no migration applied) to {head} (head)" \
        in first.output
    assert f"already at {head} (head); nothing to do" in db("upgrade", env=env).output
    assert f"at {head} (head)" in db("current", env=env).output

    refused = db("downgrade", "base", env=env, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    down = db("downgrade", "base", "--yes", env=env)
    assert f"downgraded from {head} to an empty database" in down.output
    assert f"at an empty database (no migration applied); the newest is {head}" \
        in db("current", env=env).output


def test_the_default_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    result = db("upgrade")
    assert result.exit_code == 0, result.output
    assert "database: sqlite:///monitor.sqlite" in result.output
    assert (tmp_path / "monitor.sqlite").is_file()


def test_postgres_through_the_option_with_the_password_masked() -> None:
    with throwaway_postgres("monitor_cli") as url:
        with_password = url.replace("postgres@", f"postgres:{PASSWORD}@")  # trust auth
        result = db("upgrade", "--database-url", with_password)
        assert result.exit_code == 0, result.output
        assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/monitor_cli_" in result.output
        assert f"to {head_revision()} (head)" in result.output
        assert PASSWORD not in result.output


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    result = db("upgrade", "--database-url",
                f"postgresql://monitor:{PASSWORD}@127.0.0.1:1/monitor")
    assert result.exit_code == 1
    assert "cannot connect to the postgresql server at host 127.0.0.1, port 1" in result.output
    assert PASSWORD not in result.output


def test_a_malformed_url_is_a_usage_error_without_the_password() -> None:
    result = db("current", "--database-url", f"nonsense://x:{PASSWORD}@@")
    assert result.exit_code == 2
    assert PASSWORD not in result.output
