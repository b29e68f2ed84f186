"""The batch stage on real databases: parity with research, idempotent re-runs, crashes
that leave no partial window, and clear errors on bad sources."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from examples.music_home import mon, training_profile
from examples.music_home_events import (
    DEFAULT_START,
    click_outcomes,
    generate_events,
    generate_reference,
)
from metrics.drift import ReferenceProfile
from monitor.batch.query_source import QuerySource
from monitor.batch.rollup import rollup
from monitor.batch.runner import BatchRunError, BatchRunner, Retry
from monitor.batch.sources import EventSource, FileSource, SourceError, TableSource, source_for
from monitor.batch.tables import events_table, load_and_report, load_events, rows_for_insert
from monitor.lifecycle import bind_stored_reference
from monitor.references import fit_profile
from monitor.research import evaluate
from monitor.spec import MetricSpec
from monitor.storage.database import Database, DatabaseUnavailableError
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets

STREAM = mon.streams["home"]
DAYS = 2
START = DEFAULT_START
END = START + pd.Timedelta(days=DAYS)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(start=START, days=DAYS, seed=3, events_per_hour=600)


@pytest.fixture(scope="module")
def labels(events: pd.DataFrame) -> pd.DataFrame:
    return click_outcomes(events, seed=3)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = generate_reference(start=START, seed=3, events_per_hour=600)
    return training_profile(reference)


@pytest.fixture
def source_engine(database: Database, events: pd.DataFrame) -> Iterator[sa.Engine]:
    """The example events in a ``home_events`` table of the test database.

    Loaded once per database: tests that change the table drop it when done.
    """
    engine = sa.create_engine(database.url)
    loaded = sa.inspect(engine).has_table("home_events")
    if loaded:
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SELECT COUNT(*) FROM home_events")).scalar() == len(
                events)
    if not loaded:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
        load_events(engine, STREAM, events)
    yield engine
    engine.dispose()


def promote(store: SqlStore, profile: ReferenceProfile, names: list[str] | None = None
            ) -> list[Target]:
    store.save_profile(profile)
    for spec in mon.metrics.values():
        if names is None or spec.name in names:
            definition = store.register_metric(bind_stored_reference(spec, store))
            store.record_stage_change(spec.name, definition.version, "batch", by="test",
                                      reason="parity test")
    return batch_targets(mon, store, names or ())


def runner(store: SqlStore, engine: sa.Engine, **options: Any) -> BatchRunner:
    options.setdefault("retry", Retry(attempts=1))
    return BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=5_000),
                       **options)


def research_values(spec: MetricSpec, events: pd.DataFrame, profile: ReferenceProfile,
                    labels: pd.DataFrame | None = None) -> pd.DataFrame:
    return evaluate(spec, events, reference=profile, labels=labels).drop(columns="stage")


def stored(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="batch", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def test_batch_values_equal_research_values_for_every_example_metric(
    store: SqlStore, source_engine: sa.Engine, events: pd.DataFrame, labels: pd.DataFrame,
    profile: ReferenceProfile
) -> None:
    targets = promote(store, profile)
    assert {t.metric.name for t in targets} == set(mon.metrics)
    outcomes = mon.streams["outcomes"]
    with source_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {outcomes.table}"))
    load_events(source_engine, outcomes, labels)
    reads: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    batch = BatchRunner(store, lambda m: CountingSource(TableSource(source_engine, m.stream),
                                                        reads),
                        label_source_for=lambda s: TableSource(source_engine, s))
    summaries = batch.run_many(targets, since=START, until=END)
    assert [s.rows_read for s in summaries] == [len(events)] * len(targets)
    # One read per day-long slice, shared by the metrics without labels; the one joined to
    # labels reads with its label source (its windows stay open for the labels' horizon).
    assert len(reads) == DAYS * 2
    for target in targets:
        joined = target.metric.labels is not None
        expected = research_values(target.metric, events, profile, labels if joined else None)
        pd.testing.assert_frame_equal(stored(store, target.metric.name), expected,
                                      check_exact=True, check_dtype=False)


def test_rerunning_a_window_changes_nothing_and_adds_no_rows(
    store: SqlStore, source_engine: sa.Engine, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["latency"])
    batch = runner(store, source_engine)
    batch.run(target.metric, target.version, since=START, until=END)
    first = stored(store, "latency")
    batch.run(target.metric, target.version, since=START, until=END)
    again = stored(store, "latency")
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert len(first) == DAYS * 24 * len(target.metric.fields or ())


def test_a_run_continues_from_its_watermark(
    store: SqlStore, source_engine: sa.Engine, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["ctr"])
    batch = runner(store, source_engine)
    first = batch.run(target.metric, target.version, now=START + pd.Timedelta("30h"))
    assert (first.since, first.until) == (START, START + pd.Timedelta("30h"))
    second = batch.run(target.metric, target.version, now=END + pd.Timedelta("5min"))
    assert (second.since, second.until) == (START + pd.Timedelta("30h"), END)
    assert first.rows_read + second.rows_read == len(events)
    up_to_date = batch.run(target.metric, target.version, now=END + pd.Timedelta("10min"))
    assert up_to_date.up_to_date and up_to_date.windows_written == 0
    expected = research_values(target.metric, events, profile)
    pd.testing.assert_frame_equal(stored(store, "ctr"), expected, check_exact=True,
                                  check_dtype=False)


class CountingSource:
    """A source that notes each range it is asked to read."""

    def __init__(self, inner: EventSource, reads: list[tuple[pd.Timestamp, pd.Timestamp]]
                 ) -> None:
        self.inner, self.reads = inner, reads

    def check(self) -> None:
        self.inner.check()

    def earliest(self) -> pd.Timestamp | None:
        return self.inner.earliest()

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        self.reads.append((since, until))
        return self.inner.chunks(since, until)


class CrashingSource:
    """A source that raises in the middle of the second slice it reads."""

    def __init__(self, inner: EventSource) -> None:
        self.inner = inner
        self.slices = 0

    def check(self) -> None:
        self.inner.check()

    def earliest(self) -> pd.Timestamp | None:
        return self.inner.earliest()

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        self.slices += 1
        for number, chunk in enumerate(self.inner.chunks(since, until)):
            if self.slices == 2 and number == 1:
                raise RuntimeError("injected crash after the first chunk of the slice")
            yield chunk


def test_a_crash_leaves_no_partial_window_and_the_next_run_completes_it(
    store: SqlStore, source_engine: sa.Engine, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["fav_rank"])
    crashing = CrashingSource(TableSource(source_engine, STREAM, chunk_rows=5_000))
    batch = BatchRunner(store, lambda m: crashing, retry=Retry(attempts=1))
    with pytest.raises(BatchRunError, match="injected crash"):
        batch.run(target.metric, target.version, since=START, until=END)

    after_crash = stored(store, "fav_rank")
    # only the first slice (day) is stored, whole; nothing of the day that crashed
    assert after_crash["window_start"].max() == START + pd.Timedelta("23h")
    assert after_crash["window_start"].min() == START
    runs = store.recent_runs("fav_rank")
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert "injected crash" in (runs[0].error or "")

    runner(store, source_engine).run(target.metric, target.version, now=END)
    expected = research_values(target.metric, events, profile)
    pd.testing.assert_frame_equal(stored(store, "fav_rank"), expected, check_exact=True,
                                  check_dtype=False)


def test_a_failing_slice_is_retried_with_backoff(
    store: SqlStore, source_engine: sa.Engine, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["latency"])
    crashing = CrashingSource(TableSource(source_engine, STREAM, chunk_rows=5_000))
    waits: list[float] = []
    batch = BatchRunner(store, lambda m: crashing, retry=Retry(attempts=3, backoff_seconds=0.5),
                        sleep=waits.append)
    summary = batch.run(target.metric, target.version, since=START, until=END)
    assert waits == [0.5]  # the second slice failed once, then went through
    assert len(summary.failures) == 1 and summary.windows_written == DAYS * 24


def test_a_missing_source_table_is_named(store: SqlStore, database: Database,
                                         profile: ReferenceProfile) -> None:
    [target] = promote(store, profile, ["latency"])
    engine = sa.create_engine(database.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
    with pytest.raises(SourceError, match="source table 'home_events' of stream 'home' does "
                                          "not exist"):
        runner(store, engine).run(target.metric, target.version, since=START, until=END)
    assert store.read_values(metric="latency", limit=None).empty
    assert store.recent_runs("latency") == []
    engine.dispose()


def test_a_source_column_of_the_wrong_type_is_named(
    store: SqlStore, database: Database, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["latency"])
    engine = sa.create_engine(database.url)
    columns = [sa.Column(c.name, sa.Text() if c.name == "latency_ms" else c.type)
               for c in events_table(STREAM).columns]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
    sa.Table("home_events", sa.MetaData(), *columns).create(engine)
    try:
        with pytest.raises(SourceError, match="column 'latency_ms' is TEXT but stream 'home' "
                                              "declares it float"):
            runner(store, engine).run(target.metric, target.version, since=START, until=END)
        assert store.read_values(metric="latency", limit=None).empty
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE home_events"))
        engine.dispose()


def test_an_unreachable_database_says_where_and_hides_the_password() -> None:
    store = SqlStore.open("postgresql+psycopg://monitor:s3cret-pw@127.0.0.1:1/monitor")
    with pytest.raises(DatabaseUnavailableError) as caught:
        store.recent_runs("latency")
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "s3cret-pw" not in message
    store.close()


def test_bad_rows_in_the_source_go_to_dead_letters(
    store: SqlStore, database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["latency"])
    engine = sa.create_engine(database.url)
    table = events_table(STREAM)
    for column in table.columns:
        column.nullable = True  # an upstream table that lets a NULL through
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
    table.create(engine)
    load_events(engine, STREAM, events.head(200))
    bad, _ = STREAM.schema.validate(events.head(1))
    bad["latency_ms"] = float("nan")
    with engine.begin() as conn:
        conn.execute(table.insert(), rows_for_insert(bad[[c.name for c in table.columns]]))
    try:
        summary = runner(store, engine).run(target.metric, target.version, since=START,
                                            until=END)
        assert summary.rows_read == 201 and summary.rows_rejected == 1
        [letter] = store.recent_dead_letters()
        assert letter.reason == "field 'latency_ms' is null"
        assert letter.source == "batch:home_events"
        assert f'"user_id": {bad["user_id"].loc[0]}' in str(letter.payload)
        counts = stored(store, "latency").groupby("window_start")["count"].first()
        assert counts.sum() == 200  # the bad row is in no value
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE home_events"))
        engine.dispose()


def test_batch_run_command_backfills_and_reports(
    store: SqlStore, database: Database, source_engine: sa.Engine, profile: ReferenceProfile
) -> None:
    from click.testing import CliRunner

    from monitor.cli.main import cli

    promote(store, profile, ["latency", "ctr"])
    args = ["--app", "examples.music_home:mon", "batch", "run", "--database-url", database.url,
            "--since", START.isoformat(), "--until", END.isoformat()]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # No progress bar ("batch latency, ctr: 100%|...| 2/2 [00:01<00:00, ...]"): stderr is
    # not a terminal.
    assert not re.search(r" \[\d+:\d+<", result.stderr), result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("latency", "ctr"))]
    assert lines == [
        f"latency v1: {DAYS * 24} windows from 2026-03-02 00:00 to 2026-03-04 00:00 UTC, "
        f"{len(stored_rows(source_engine)):,} rows read",
        f"ctr v1: {DAYS * 24} windows from 2026-03-02 00:00 to 2026-03-04 00:00 UTC, "
        f"{len(stored_rows(source_engine)):,} rows read",
    ]
    assert not store.read_values(metric="fav_rank", limit=None).size  # not promoted


def stored_rows(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT ts FROM home_events")))


@pytest.mark.parametrize("name", ["latency", "fav_rank", "feature_drift"])
def test_daily_rollup_from_hourly_states_equals_computing_days_directly(
    store: SqlStore, source_engine: sa.Engine, events: pd.DataFrame, profile: ReferenceProfile,
    name: str
) -> None:
    [target] = promote(store, profile, [name])
    runner(store, source_engine).run(target.metric, target.version, since=START, until=END)
    written = rollup(store, target.metric, target.version, "1d", START.to_pydatetime(),
                     END.to_pydatetime())
    assert written == DAYS
    daily = dataclasses.replace(target.metric, window="1d")
    expected = research_values(daily, events, profile)
    expected["metric"] = f"{name}@1d"
    got = store.read_values(metric=f"{name}@1d", stage="batch", limit=None)
    pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True), expected,
                                  check_exact=True, check_dtype=False)


def test_rollup_refuses_a_window_that_does_not_tile(store: SqlStore, profile: ReferenceProfile
                                                    ) -> None:
    [target] = promote(store, profile, ["latency"])
    with pytest.raises(ValueError, match="must be a multiple of 1h"):
        rollup(store, target.metric, target.version, "30m", START.to_pydatetime(),
               END.to_pydatetime())


def test_a_refit_reference_does_not_change_what_a_promoted_metric_compares_against(
    store: SqlStore, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    [before] = promote(store, profile, ["score_psi"])
    clean, _ = STREAM.schema.validate(events)  # a "refit" on other data, same name
    store.save_profile(fit_profile(clean, STREAM.schema, ["score"], name="training"))
    assert store.load_profile("training").id != profile.id
    [after] = batch_targets(mon, store, ["score_psi"])
    assert after.metric.aggregate.to_dict()["profile_id"] == profile.id
    assert (after.metric.id, after.version) == (before.metric.id, before.version)


def test_a_query_source_feeds_the_batch_stage_like_a_table(
    store: SqlStore, source_engine: sa.Engine, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    from monitor import Monitor

    app = Monitor("query")
    app.stream("home", schema=STREAM.schema.to_dict(),
               query="SELECT * FROM home_events WHERE country <> 'BR'")
    spec = dataclasses.replace(mon.get("ctr"), stream=app.streams["home"])
    version = store.register_metric(spec).version
    source = QuerySource(source_engine, spec.stream, chunk_rows=7_000)
    summary = BatchRunner(store, lambda m: source).run(spec, version, since=START, until=END)
    kept = events[events["country"] != "BR"]
    assert summary.rows_read == len(kept)
    expected = research_values(spec, kept, profile)
    pd.testing.assert_frame_equal(stored(store, "ctr"), expected, check_exact=True,
                                  check_dtype=False)


def test_a_query_whose_column_has_the_wrong_type_is_named(
    store: SqlStore, source_engine: sa.Engine
) -> None:
    from monitor import Monitor

    app = Monitor("query")
    app.stream("home", schema=STREAM.schema.to_dict(),
               query="SELECT ts, view_id, user_id, country, device, model_version, "
                     "carousels_served, "
                     "'[]' AS carousels_shown, fav_carousel, fav_carousel_rank, score, "
                     "'fast' AS latency_ms, clicked, NULL AS clicked_carousel, "
                     "session_length_s, tracks_played_7d FROM home_events")
    with pytest.raises(SourceError, match="gives no usable row in a sample of 100: field "
                                          "'latency_ms' is not a number"):
        QuerySource(source_engine, app.streams["home"]).check()


def test_files_matched_by_a_glob_feed_the_batch_stage(
    store: SqlStore, events: pd.DataFrame, profile: ReferenceProfile, tmp_path
) -> None:
    from examples.music_home_events import write_events
    from monitor import Monitor

    days = events.groupby(pd.to_datetime(events["ts"], utc=True).dt.strftime("%Y-%m-%d"))
    for number, (day, frame) in enumerate(days):
        suffix = ["jsonl", "csv", "parquet"][number % 3]  # any mix of formats
        write_events(frame, tmp_path / f"home-{day}.{suffix}")
    app = Monitor("files")
    app.stream("home", schema=STREAM.schema.to_dict(), files=str(tmp_path / "home-*"))
    spec = dataclasses.replace(mon.get("latency"), stream=app.streams["home"])
    version = store.register_metric(spec).version
    source = source_for(spec.stream, None)
    assert isinstance(source, FileSource)
    summary = BatchRunner(store, lambda m: source).run(spec, version,
                                                      now=END + pd.Timedelta("1min"))
    assert (summary.since, summary.until) == (START, END)  # the first run starts at the data
    assert summary.rows_read == len(events)
    expected = research_values(spec, events, profile)
    pd.testing.assert_frame_equal(stored(store, "latency"), expected, check_exact=True,
                                  check_dtype=False)


def test_a_table_whose_lists_an_earlier_version_stored_as_json_still_loads_and_reads(
    store: SqlStore, database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """list[str] columns are arrays of text on Postgres now; a table made before (JSON)
    takes new loads as JSON and feeds the batch stage the same values."""
    [target] = promote(store, profile, ["click_ndcg"])
    engine = sa.create_engine(database.url)
    lists = [f.name for f in STREAM.schema.fields if f.type == "list[str]"]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
    events_table(STREAM, json_lists=lists).create(engine)  # as earlier versions made it
    try:
        assert load_events(engine, STREAM, events) == len(events)
        [column] = [c for c in sa.inspect(engine).get_columns("home_events")
                    if c["name"] == "carousels_shown"]
        assert isinstance(column["type"], sa.JSON)  # left as it was
        runner(store, engine).run(target.metric, target.version, since=START, until=END)
        pd.testing.assert_frame_equal(stored(store, "click_ndcg"),
                                      research_values(target.metric, events, profile),
                                      check_exact=True, check_dtype=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE home_events"))
        engine.dispose()


def test_a_new_table_holds_lists_as_arrays_on_postgres_and_as_json_on_sqlite(
    database: Database, source_engine: sa.Engine
) -> None:
    [column] = [c for c in sa.inspect(source_engine).get_columns("home_events")
                if c["name"] == "carousels_shown"]
    expected = sa.ARRAY if database.url.startswith("postgresql") else sa.JSON
    assert isinstance(column["type"], expected)


def test_a_list_item_with_a_nul_is_left_out_where_postgres_cannot_hold_it(
    database: Database, events: pd.DataFrame
) -> None:
    rows = events.head(3).copy()
    rows["carousels_shown"] = pd.Series([["a"], ["a\x00b", "c"], ["d"]], dtype=object)
    engine = sa.create_engine(database.url)
    try:
        report = load_and_report(engine, STREAM, rows, "nul_lists")
        with engine.connect() as conn:
            kept = [list(v) if isinstance(v, list) else json.loads(v) for v in conn.execute(
                sa.text("SELECT carousels_shown FROM nul_lists ORDER BY view_id")).scalars()]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS nul_lists"))
        engine.dispose()
    if database.url.startswith("postgresql"):
        assert kept == [["a"], ["d"]] and report.loaded == 2
        assert report.rejects.to_dict("records") == [{
            "row": 1, "reason": "field 'carousels_shown' holds an item with a NUL character, "
                                "which Postgres text cannot hold"}]
    else:  # SQLite's JSON text holds it
        assert kept == [["a"], ["a\x00b", "c"], ["d"]] and report.rejects.empty
