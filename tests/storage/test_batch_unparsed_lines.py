"""Lines of a files= stream that do not parse at all (malformed JSON, a CSV row with the
wrong number of fields, bytes that are not UTF-8) are dead letters of the batch run,
stored once however often the run is repeated, and counted in what `monitor batch run`
prints - as the rows that parse but fail validation are."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.app_loading import load_app
from monitor.cli.main import cli
from monitor.storage.database import Database
from monitor.storage.store import SqlStore

DAY_1 = "2026-05-01T00:00:00Z"
DAY_2 = "2026-05-02T00:00:00Z"
DAY_3 = "2026-05-03T00:00:00Z"
UNPARSED = {
    "jsonl": {"malformed JSON: Expecting value", "not a JSON object", "not UTF-8 text"},
    "csv": {"malformed CSV row: expected 3 fields, got 4",
            "malformed CSV row: expected 3 fields, got 2", "not UTF-8 text"},
}


def events_file(directory: Path, kind: str) -> Path:
    """Three good events on each of two days, and three lines that do not parse."""
    times = [f"2026-05-0{day}T{hour:02d}:30:00Z" for day in (1, 2) for hour in (1, 5, 9)]
    if kind == "jsonl":
        good = [b'{"ts": "%s", "latency_ms": %d.5, "country": "SE"}\n' % (t.encode(), i)
                for i, t in enumerate(times)]
        bad = [b'{"ts": "2026-05-01T02:00:00Z", "latency_ms": }\n', b'["not", "an", "object"]\n',
               b'{"ts": "2026-05-02T02:00:00Z", "latency_ms": 1.0, "country": "S\xffE"}\n']
        lines = [b"\n", *good]  # a blank line: skipped, and counted in line numbers
    else:
        good = [b"%s,%d.5,SE\n" % (t.encode(), i) for i, t in enumerate(times)]
        bad = [b"2026-05-01T02:00:00Z,1.0,SE,surplus\n", b"2026-05-01T03:00:00Z,1.0\n",
               b"2026-05-02T02:00:00Z,1.0,S\xffE\n"]
        lines = [b"ts,latency_ms,country\n", *good]
    for position, line in zip((2, 4, 6), bad, strict=True):
        lines.insert(position, line)
    path = directory / f"events.{kind}"
    path.write_bytes(b"".join(lines))
    return path


def app_module(directory: Path, files: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable app whose stream reads ``files``; its --app target."""
    name = f"files_app_{secrets.token_hex(4)}"
    (directory / f"{name}.py").write_text(
        "import metrics\n"
        "from monitor import Monitor\n"
        "mon = Monitor('files-test')\n"
        "mon.stream('home', schema={'latency_ms': 'float', 'country': 'str'}, "
        f"files={str(files)!r})\n"
        "mon.metric('latency', 'home', metrics.quantiles('latency_ms', ps=(0.5,)), "
        "window='1h')\n")
    monkeypatch.syspath_prepend(str(directory))
    return f"{name}:mon"


def batch_run(app: str, database: Database, *options: str) -> Result:
    return CliRunner().invoke(cli, ["--app", app, "batch", "run", "--database-url",
                                    database.url, *options], catch_exceptions=False)


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_unparsed_lines_are_dead_letters_stored_once_and_counted(
    store: SqlStore, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    files = events_file(tmp_path, kind)
    app = app_module(tmp_path, files, monkeypatch)
    spec = load_app(app).get("latency")
    version = store.register_metric(spec).version
    store.record_stage_change("latency", version, "batch", by="test", reason="files test")

    # A first run (from the earliest event), the next one from its watermark, and a
    # backfill of both days again: each offers the three lines with its first slice.
    runs = [batch_run(app, database, "--until", DAY_2),
            batch_run(app, database, "--until", DAY_3),
            batch_run(app, database, "--since", DAY_1, "--until", DAY_3)]
    for result in runs:
        assert result.exit_code == 0, result.output
    summaries = [next(line for line in r.stdout.splitlines() if line.startswith("latency"))
                 for r in runs]
    assert all(s.endswith(", 6 rows read, 3 rejected (see dead letters)")
               for s in summaries[:2]), summaries
    assert summaries[2].endswith(", 9 rows read, 3 rejected (see dead letters)"), summaries

    letters = store.recent_dead_letters(f"batch:{files}")
    assert len(letters) == 3  # not 9: a rerun stores nothing new
    assert {letter.reason for letter in letters} == UNPARSED[kind]
    assert sorted(str(letter.key).split("#")[0] for letter in letters) == [
        f"line:{files.name}:{n}" for n in (3, 5, 7)]
    assert any("S\\xffE" in str(letter.payload) for letter in letters)
    values = store.read_values(metric="latency", stage="batch", limit=None)
    assert values.groupby("window_start")["count"].first().tolist() == [1] * 6
