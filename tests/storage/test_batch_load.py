"""`monitor batch load` on real databases: a row the database cannot hold (a NUL in a str
value, on Postgres) is rejected with its reason and the rest is loaded - it used to fail
the whole load - and every rejected row is reported by reason."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from monitor.cli.main import cli
from monitor.storage.database import Database

TABLE = "load_events_test"
LINES = [
    b'{"ts": "2026-05-01T00:00:00Z", "latency_ms": 1.0, "country": "SE"}',
    b'{"ts": "2026-05-01T00:01:00Z", "latency_ms": 2.0, "country": "S\\u0000E"}',
    b'{"ts": "2026-05-01T00:02:00Z", "latency_ms": "fast", "country": "US"}',
    b'{"ts": "2026-05-01T00:03:00Z", "latency_ms": ',
    b'{"ts": "2026-05-01T00:04:00Z", "latency_ms": 3.0, "country": "\\u00d6\\u00dc"}',
]


def test_a_row_the_database_cannot_hold_is_rejected_with_its_reason(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    engine = sa.create_engine(database.url)
    try:
        result = CliRunner().invoke(cli, [
            "--app", "tests.cli_app:mon", "batch", "load", str(path), "--stream", "home",
            "--table", TABLE, "--source-url", database.url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT country FROM {TABLE} ORDER BY ts")
                                  ).scalars().all()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        engine.dispose()
    reasons = ["1 malformed JSON: Expecting value", "1 field 'latency_ms' is not a number"]
    if database.url.startswith("postgresql"):
        assert stored == ["SE", "ÖÜ"]
        reasons.append("1 field 'country' holds a NUL character, which Postgres text cannot "
                       "hold")
    else:  # SQLite's text holds a NUL
        assert stored == ["SE", "S\x00E", "ÖÜ"]
    assert result.stdout.startswith(f"loaded {len(stored)} events into {TABLE}")
    rejected = result.stdout.strip().split(" rejected: ")[1]
    assert sorted(rejected.split("; ")) == sorted(reasons)
    assert f"; {len(reasons)} rejected: " in result.stdout
