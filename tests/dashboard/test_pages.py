"""Every dashboard page on the seeded example week and on an empty database (AppTest)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
from sqlalchemy import select, update

from dashboard.drift_windows import VERDICTS
from examples.music_home import MODEL_ROLLOUT
from examples.music_home_events import generate_events
from monitor.alerts.records import AlertKey, Notification
from monitor.alerts.render import dashboard_link
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import default_range
from monitor.storage.database import Database
from monitor.storage.migrate import upgrade
from monitor.storage.models import MetricDefinitionRow, table_of
from tests.dashboard.conftest import PAGES, AppFactory
from tests.dashboard.helpers import charts, marks, texts
from tests.dashboard.seed import (
    DAYS,
    DEAD_LETTER_METRIC,
    EVENTS_PER_HOUR,
    SEGMENTED_DRIFT,
    START,
    Seeded,
    copy_database,
)


def test_overview_lists_every_metric_with_firing_alerts_on_top(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url)
    assert [t.value for t in app.title] == ["domain-monitor"]
    [table] = [m.value for m in app.markdown if "monitor-overview" in m.value]
    rows = table.split("<tr>")[2:]  # after the header
    assert len(rows) == len(seeded.metrics)
    names = [next(name for name in seeded.metrics if f">{name}</a>" in row) for row in rows]
    assert set(names) == set(seeded.metrics)
    firing = set(seeded.firing)
    assert firing, "the seeded week leaves alerts firing"
    assert set(names[: len(firing)]) == firing  # firing metrics first
    assert all("firing" in row for row in rows[: len(firing)])
    assert all(row.count("<polyline") >= 1 for row in rows)  # a sparkline each
    assert 'href="metric?metric=latency"' in table
    assert "home-platform" in table and "streaming" in table  # owner and stage
    text = texts(app)
    assert f"Firing alerts ({len(firing)})" in text
    assert all(name in text for name in firing)
    assert DEAD_LETTER_METRIC in text


def test_metric_page_overlays_stages_with_thresholds_and_alert_markers(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, metric="latency")  # the short link: /?metric=NAME
    assert [t.value for t in app.title] == ["latency"]
    [(spec, data)] = charts(app)
    assert marks(spec) == ["line", "rule", "point"]  # series, threshold, alert markers
    series, threshold, markers = data
    assert set(series["stage"]) == {"research", "batch", "streaming"}
    assert set(series["field"]) == {"p99"} and set(series["segment"]) == {"*"}
    assert list(threshold["bound"]) == [1000.0]
    assert set(markers["transition"]) == {"firing", "resolved"}
    [parity, history] = [t.value for t in app.table]
    assert set(parity["verdict"]) == {"identical"}
    assert list(history["to"]) == ["research", "batch", "streaming"]


def test_metric_page_link_preselects_the_segment_and_a_longer_range(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, page="metric", metric="ctr", segment="country=BR")
    assert app.selectbox(key="metric").value == "ctr"
    assert app.multiselect(key="segments:ctr").value == ["*", "country=BR"]
    app.radio(key="metric_range").set_value("last 30 days").run()
    [(_, data)] = charts(app)
    assert set(data[0]["segment"]) == {"*", "country=BR"}
    assert set(data[0]["stage"]) == {"research", "batch"}
    assert len(data[0]) == 2 * 2 * DAYS * 24  # every window, a point per segment and stage


def test_long_ranges_are_bucketed_in_sql(seeded: Seeded, run_app: AppFactory) -> None:
    with DashboardQueries.open(seeded.url) as queries:
        latest = queries.values.latest_window("latency", 1)
        span = default_range(latest, 7)
        points = queries.values.series("latency", 1, span, window="1h", fields=["p99"],
                                       segments=["*"], stages=["batch"], max_points=24)
        full = queries.values.series("latency", 1, span, window="1h", fields=["p99"],
                                     segments=["*"], stages=["batch"])
    assert len(full) == DAYS * 24 and len(points) <= 25
    assert points["windows"].sum() == DAYS * 24
    assert points["high"].max() == full["value"].max()  # the spike survives bucketing
    assert points["value"].mean() == pytest.approx(full["value"].mean(), rel=0.05)


def test_alert_message_links_open_the_alerts_page_for_that_alert(
    seeded: Seeded, run_app: AppFactory
) -> None:
    t = datetime(2026, 3, 4, 13, tzinfo=UTC)
    note = Notification("k", "firing", AlertKey("latency", 1, "batch",
                                                "homepage P99 latency over 1s", "*"),
                        "critical", {}, t, t, 2951.9, 1000.0, "", t)
    link = urlsplit(dashboard_link("http://dashboard.internal:8501", note))
    app = run_app(seeded.url, **dict(parse_qsl(link.query)))
    assert [t.value for t in app.title] == ["Alerts"]
    history = app.dataframe[0].value
    assert set(history["metric"]) == {"latency"} and set(history["stage"]) == {"batch"}
    assert {"firing", "resolved"} <= set(history["transition"])
    links = [p.proto.page for p in app.get("page_link")]
    assert any(page.endswith("metric") for page in links)  # on to the metric page


def test_drift_page_compares_reference_and_current_histograms(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, page="drift", metric="feature_drift")
    assert app.selectbox(key="drift_metric").value == "feature_drift"
    app.selectbox(key="drift_column").set_value("session_length_s").run()
    drawn = charts(app)
    [bins] = [d[0] for s, d in drawn if marks(s) == ["rect"]]
    assert set(bins["which"]) == {"reference", "current"}
    for which in ("reference", "current"):
        assert bins[bins["which"] == which]["share"].sum() == pytest.approx(1.0, abs=0.01)
    app.radio(key="drift_scope").set_value("the whole time range").run()
    assert f"{DAYS * 24} window(s)" in texts(app)
    app.radio(key="drift_bins").set_value("by reference quantile").run()
    [[current, reference]] = [d for s, d in charts(app) if marks(s) == ["bar", "line"]]
    assert set(current["which"]) == {"current"} and set(reference["which"]) == {"reference"}
    app = run_app(seeded.url, page="drift", metric="score_psi")
    assert any(marks(s) == ["rect"] for s, _ in charts(app))


def test_drift_page_shows_each_windows_count_p_value_and_decision(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, page="drift", metric="feature_drift")
    text = texts(app)
    assert ("Flagged when beyond sampling noise at the window's count (BH-adjusted p < 0.01 "
            "over columns and segments) and at least 0.1 (wasserstein of session_length_s, "
            "tracks_played_7d).") in text
    with DashboardQueries.open(seeded.url) as queries:
        span = default_range(queries.values.latest_window("feature_drift", 1), 7)
        latest = queries.values.latest_values("feature_drift", 1, "batch", "*", span)
        stored = queries.values.series("feature_drift", 1, span, window="1h",
                                       fields=["tracks_played_7d.drifted"], segments=["*"],
                                       stages=["batch"])
    assert latest is not None
    assert f"{latest.count:,} events" in text
    [table] = [d.value for d in app.dataframe]
    assert list(table["verdict"]) == sorted(table["verdict"], key=VERDICTS.index)
    for row in table.to_dict("records"):
        column = row["column"]
        assert {k: row[k] for k in ("value", "p-value", "adjusted p", "count", "drifted")} == {
            "value": latest.values[f"{column}.wasserstein"],
            "p-value": latest.values[f"{column}.p_value"],
            "adjusted p": latest.values[f"{column}.p_adjusted"],
            "count": latest.count,
            "drifted": latest.values[f"{column}.drifted"] == 1.0}
    # The feature shift (FEATURE_SHIFT) is still on in the last window: drifted, first.
    assert table["column"].iloc[0] == "tracks_played_7d" and table["drifted"].iloc[0]

    assert app.selectbox(key="drift_column").value == "tracks_played_7d"
    statistic, p_values, counts = charts(app)[:3]
    assert marks(statistic[0]) == ["line", "point", "rule", "text"]
    windows, floor = statistic[1]
    assert len(windows) == DAYS * 24 and list(floor["floor"]) == [0.1]
    flagged = set(stored[stored["value"] == 1.0]["window_start"])
    assert flagged and set(windows[windows["verdict"] == "drifted"]["window_start"]) == flagged
    assert marks(p_values[0]) == ["line", "rule", "text"]
    p_long, alpha = p_values[1]
    assert list(alpha["alpha"]) == [0.01] and set(p_long["p"]) == {"p-value", "adjusted p"}
    assert marks(counts[0]) == ["area"]
    events = generate_events(start=START, days=DAYS, seed=5, events_per_hour=EVENTS_PER_HOUR)
    assert counts[1][0]["events"].sum() == len(events)  # every valid event, once
    assert f"{len(flagged)} of {DAYS * 24} windows drifted" in texts(app)


def test_drift_page_of_a_segmented_report_on_discrete_columns(
    seeded: Seeded, run_app: AppFactory
) -> None:
    """Brazil's model rollout moves the favourite carousel's rank: flagged in its hours
    only, with the decision corrected over columns and countries; the rank's histogram
    has a bar per rank (each value has a bin of its own)."""
    app = run_app(seeded.url, page="drift", metric=SEGMENTED_DRIFT.name, segment="country=BR")
    assert app.selectbox(key=f"drift_segment:{SEGMENTED_DRIFT.name}").value == "country=BR"
    assert "wasserstein of fav_carousel_rank, carousels_served; js of device" in texts(app)
    app.selectbox(key="drift_column").set_value("fav_carousel_rank").run()
    [windows, _] = charts(app)[0][1]
    flagged = windows[windows["verdict"] == "drifted"]["window_start"]
    begin, end = MODEL_ROLLOUT.window(START)
    assert end is not None
    assert len(flagged) >= 8 and flagged.between(begin, end, inclusive="left").all()
    app.radio(key="drift_scope").set_value("the whole time range").run()
    [(spec, [bins])] = [(s, d) for s, d in charts(app) if marks(s) == ["bar"]]
    assert spec["encoding"]["x"]["title"] == "value"
    ranks = spec["encoding"]["x"]["sort"]
    assert ranks[:10] == [str(rank) for rank in range(1, 11)] and bins["point"].all()
    for which in ("reference", "current"):
        assert bins[bins["which"] == which]["share"].sum() == pytest.approx(1.0)
    app = run_app(seeded.url, page="drift", metric="score_psi")
    assert ("(BH-adjusted p < 0.01 over segments) and at least 0.1." in texts(app))
    [table] = [d.value for d in app.dataframe]
    assert list(table["statistic"]) == ["psi"]


def test_tails_page_draws_the_p50_to_p99_band(seeded: Seeded, run_app: AppFactory) -> None:
    app = run_app(seeded.url, page="tails", metric="latency")
    [(spec, data)] = charts(app)
    assert marks(spec) == ["area", "line"]
    band, lines = data
    assert {"p50", "p99"} <= set(band.columns)
    assert (band["p99"] >= band["p50"]).all()
    assert set(lines["field"]) == {"p50", "p95", "p99", "p99.9"}
    [summary] = [t.value for t in app.table]
    assert list(summary["quantile"]) == ["p50", "p95", "p99", "p99.9"]
    app.toggle(key="tails_log").set_value(True).run()
    [(spec, _)] = charts(app)
    assert spec["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    app = run_app(seeded.url, page="tails", metric="fav_rank")
    assert app.selectbox(key="tails_segment:fav_rank").options[0] == "*"


def test_alerts_page_shows_active_alerts_silences_and_deliveries(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, page="alerts")
    active, silences = (t.value for t in app.table)
    assert set(active[active["status"] == "firing"]["metric"]) == set(seeded.firing)
    assert list(silences["reason"]) == ["SE holiday traffic"]
    assert "country=SE" in silences["matches"].iloc[0]
    history, deliveries = (d.value for d in app.dataframe)
    assert len(history) > 0
    assert set(zip(deliveries["channel"], deliveries["status"], strict=True)) == {
        ("slack", "sent"), ("email", "failed")}
    assert set(deliveries[deliveries["status"] == "failed"]["last error"]) == {
        "550 mailbox unavailable"}
    [(_, [counts])] = charts(app)
    assert set(counts["status"]) == {"sent", "failed"}


def test_dead_letters_page_counts_reasons_and_shows_excerpts(
    seeded: Seeded, run_app: AppFactory
) -> None:
    app = run_app(seeded.url, page="dead_letters")
    counted, stored = (t.value for t in app.table)
    assert set(counted["reason"]) == {"invalid JSON", "unparseable timestamp in ts",
                                      "oversized message"}
    assert counted["count"].sum() > len(app.dataframe[0].value)  # counts beyond samples
    assert {"field 'latency_ms' is not finite", "field 'country' is null",
            "invalid JSON"} <= set(stored["reason"])
    assert set(stored["source"]) == {"batch:home_events", "stream:home-events"}
    samples = app.dataframe[0].value
    assert samples["payload excerpt"].str.len().max() <= 240
    assert not samples["payload excerpt"].str.contains("SEEDED-TOKEN-123").any()


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_says_to_run_the_demo(
    empty_url: str, run_app: AppFactory, page: str
) -> None:
    app = run_app(empty_url, page=page)
    [info] = [i.value for i in app.info]
    assert "No data yet" in info and "monitor demo" in info
    assert not app.get("vega_lite_chart")


def test_an_unreachable_database_is_named_without_its_password(run_app: AppFactory) -> None:
    app = run_app("postgresql+psycopg://monitor:hunter2-secret@127.0.0.1:9/monitor")
    [error] = [e.value for e in app.error]
    assert "cannot connect" in error and "127.0.0.1" in error
    assert "hunter2-secret" not in error + texts(app)
    assert "monitor:***@" in " ".join(c.value for c in app.sidebar.caption)


def test_series_of_a_metric_without_values_is_empty(seeded: Seeded) -> None:
    with DashboardQueries.open(seeded.url) as queries:
        frame = queries.values.series("nothing", 1, default_range(None, 1), window="1h",
                                      fields=["p99"], segments=["*"])
    assert frame.empty and list(frame.columns)[:4] == ["stage", "segment", "field",
                                                       "window_start"]
    assert isinstance(frame["window_start"].dtype, pd.DatetimeTZDtype)


def test_a_database_without_tables_says_to_upgrade_it(tmp_path: Path,
                                                      run_app: AppFactory) -> None:
    app = run_app(f"sqlite:///{tmp_path / 'blank.sqlite'}")
    [error] = [e.value for e in app.error]
    assert "monitor db upgrade" in error


def test_a_drift_version_defined_before_calibration_still_shows_its_values(
    seeded: Seeded, run_app: AppFactory, tmp_path: Path
) -> None:
    """A version stored with a fixed ``threshold`` (before calibrated decisions): its
    values and what its flag meant are shown; its states, which this code can no longer
    rebuild an aggregate for, are not drawn, and the page says why."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    upgrade(url)
    copy_database(seeded.url, url)
    rows = table_of(MetricDefinitionRow)
    with Database(url) as database, database.begin() as conn:
        spec = conn.execute(select(rows.c.spec).where(rows.c.name == "score_psi")).scalar_one()
        aggregate = {k: v for k, v in spec["aggregate"].items()
                     if k not in ("alpha", "correction", "min_effect")}
        conn.execute(update(rows).where(rows.c.name == "score_psi").values(
            spec={**spec, "aggregate": {**aggregate, "threshold": 0.2}}))
    app = run_app(url, page="drift", metric="score_psi")
    text = texts(app)
    assert "flagged when the statistic is at least 0.2, whatever the window's count" in text
    assert "threshold" in text and "its stored states cannot be drawn" in text
    [table] = [d.value for d in app.dataframe]
    assert list(table["statistic"]) == ["psi"] and table["values tested"].isna().all()
    assert len(charts(app)) == 3  # statistic, p-value, count; no histogram
