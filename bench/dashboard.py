"""Dashboard page cost on a large history: the storage queries alone and whole page runs.

    .venv/bin/python bench/dashboard.py [--metrics 50] [--segments 10] [--days 30] [--repeats 5]

Fills a throwaway Postgres database (on 127.0.0.1:5432, or $MONITOR_BENCH_POSTGRES_URL's
server) with an hourly history: ``--metrics`` registered metrics in the batch stage (a
third tails metrics with p50/p95/p99/p99.9, the rest one-field rates and drift scores,
each with a threshold rule), each on ``--segments`` segments (the overall one and
``country=...``) for ``--days`` days, a week of it also stored as research and two days as
streaming (for the parity overlay), and a few firing alerts. Then it times, best of
``--repeats`` after one warm-up run:

- ``queries``: the storage reads a page makes (:mod:`monitor.storage.dashboard`);
- ``page``: the whole page in ``streamlit.testing`` (AppTest): queries, charts and the
  messages Streamlit would send to the browser (not the browser's drawing).

Pages: the overview; a tails metric's page as it opens (last 7 days, overall segment, its
alert field, three stages overlaid); and the same page over 30 days with 10 segments
and 4 fields (bucketed in SQL). Target: under 2 s for the overview and a metric page.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metrics
from bench.postgres import throwaway_database
from monitor import Monitor, Threshold
from monitor.spec import OVERALL, MetricSpec
from monitor.storage import alert_states
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import default_range
from monitor.storage.database_url import DATABASE_URL_ENV
from monitor.storage.migrate import upgrade
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
TARGET_S = 2.0
START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
COUNTRIES = ("US", "BR", "IN", "DE", "SE", "FR", "JP", "MX", "GB", "NG", "ES", "IT")


def build_app(n_metrics: int, n_segments: int) -> Monitor:
    mon = Monitor("bench")
    mon.stream("events", schema={"latency_ms": "float", "clicked": "bool", "score": "float",
                                 "country": "str"})
    for i in range(n_metrics):
        name = f"m{i:02d}"
        segment_by = ["country"] if n_segments > 1 else []
        if i % 3 == 0:
            mon.metric(name, "events", metrics.quantiles("latency_ms",
                                                         ps=(0.5, 0.95, 0.99, 0.999)),
                       segment_by=segment_by, owner="platform",
                       alerts=[Threshold("p99", above=900.0, for_windows=2)])
        elif i % 3 == 1:
            mon.metric(name, "events", metrics.rate("clicked"), segment_by=segment_by,
                       owner="growth", alerts=[Threshold("rate", below=0.2, for_windows=2)])
        else:
            mon.metric(name, "events", metrics.mean("score"), segment_by=segment_by,
                       owner="ml", alerts=[Threshold("mean", above=0.8, for_windows=2)])
    return mon


def segments(n: int) -> list[str]:
    return [OVERALL] + [f"country={c}" for c in COUNTRIES[: n - 1]]


def windows(spec: MetricSpec, segs: list[str], hours: int, rng: np.random.Generator,
            start: datetime = START) -> Iterator[WindowResult]:
    fields = spec.fields or ()
    base = {"p50": 120.0, "p95": 300.0, "p99": 600.0, "p99.9": 1200.0, "rate": 0.31,
            "mean": 0.5}
    noise = rng.normal(1.0, 0.08, size=(hours, len(segs), len(fields)))
    for h in range(hours):
        at = start + h * HOUR
        for s, segment in enumerate(segs):
            yield WindowResult(segment, at, at + HOUR, 500,
                               {f: base[f] * float(noise[h, s, k]) for k, f in
                                enumerate(fields)})


def fill(url: str, mon: Monitor, n_segments: int, days: int) -> int:
    rng = np.random.default_rng(7)
    segs = segments(n_segments)
    hours = days * 24
    end = START + hours * HOUR
    rows = 0
    with SqlStore.open(url) as store:
        for spec in mon.metrics.values():
            version = store.register_metric(spec, by="bench").version
            store.record_stage_change(spec.name, version, "batch", by="bench", reason="bench")
            rows += store.write_windows(spec.name, version, "batch",
                                        windows(spec, segs, hours, rng))
            rows += store.write_windows(spec.name, version, "research",
                                        windows(spec, segs, 7 * 24, rng))
            rows += store.write_windows(spec.name, version, "streaming",
                                        windows(spec, segs, 48, rng, end - 48 * HOUR))
        with store.database.begin() as conn:
            for spec in list(mon.metrics.values())[:3]:
                rule = spec.alerts[0]
                conn.execute(alert_states.STATES.insert().values(
                    metric=spec.name, metric_version=1, stage="batch", rule=rule.title,
                    segment=OVERALL, status="firing", consecutive=3,
                    last_window_start=end - HOUR, last_window_end=end,
                    active_since=end - 3 * HOUR, value=1000.0, bound=900.0,
                    detail="1000 > 900", severity="warning", labels={},
                    notified_at=None, updated_at=end))
    return rows


def best_of(repeats: int, run: Callable[[], object]) -> float:
    run()  # warm-up: imports, caches, the connection pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best, 4)


def page(**params: str) -> Callable[[], object]:
    """One run of the page the URL parameters open (``page=alerts``: the alerts page)."""
    from streamlit.testing.v1 import AppTest

    def run() -> object:
        app = AppTest.from_file(str(APP), default_timeout=60)
        for key, value in params.items():
            app.query_params[key] = value
        app.run()
        if app.exception:
            raise RuntimeError([e.message for e in app.exception])
        return app

    return run


def wide_metric_page(metric: str, fields: list[str], segs: list[str]) -> Callable[[], object]:
    from streamlit.testing.v1 import AppTest

    def run() -> object:
        app = AppTest.from_file(str(APP), default_timeout=60)
        app.query_params["metric"] = metric
        app.run()
        app.radio(key="metric_range").set_value("last 30 days")
        app.multiselect(key=f"fields:{metric}").set_value(fields)
        app.multiselect(key=f"segments:{metric}").set_value(segs)
        app.run()
        if app.exception or len(app.get("vega_lite_chart")) != len(fields):
            raise RuntimeError("the wide metric page did not draw one chart per field")
        return app

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.segments <= len(COUNTRIES) + 1:
        parser.error(f"--segments must be 1 to {len(COUNTRIES) + 1}")

    with throwaway_database("monitor_bench_dashboard") as url:
        upgrade(url)
        mon = build_app(args.metrics, args.segments)
        started = time.perf_counter()
        rows = fill(url, mon, args.segments, args.days)
        fill_s = time.perf_counter() - started
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            size = conn.execute(sa.text("SELECT pg_total_relation_size('metric_values')")
                                ).scalar_one()
        engine.dispose()
        print(f"{rows:,} values ({size / 2**20:.0f} MiB) for {args.metrics} metrics x "
              f"{args.segments} segments x {args.days} days hourly, in {fill_s:.1f} s",
              file=sys.stderr)

        metric = "m00"  # a tails metric: four fields, three stages
        spec = mon.get(metric)
        fields = list(spec.fields or ())
        segs = segments(args.segments)
        with DashboardQueries.open(url) as queries:
            latest = queries.values.latest_window(metric, 1)
            week, month = default_range(latest, 7), default_range(latest, 30)

            def metric_queries() -> object:
                queries.catalog.definitions()
                queries.values.latest_window(metric, 1)
                queries.values.segments_and_fields(metric, 1, week)
                queries.values.series(metric, 1, week, window="1h", fields=["p99"],
                                      segments=[OVERALL])
                queries.alerts.events(metric=metric, span=week,
                                      transitions=("firing", "resolved"))
                return queries.catalog.stage_history(metric)

            def wide_queries() -> object:
                series = queries.values.series(metric, 1, month, window="1h", fields=fields,
                                               segments=segs)
                assert set(series["segment"]) == set(segs)
                return series

            query_s = {
                "overview": best_of(args.repeats, queries.overview.metrics),
                "metric": best_of(args.repeats, metric_queries),
                "metric_30d_10_segments_4_fields": best_of(args.repeats, wide_queries),
            }
        os.environ[DATABASE_URL_ENV] = url
        page_s = {
            "overview": best_of(args.repeats, page()),
            "metric": best_of(args.repeats, page(metric=metric)),
            "metric_30d_10_segments_4_fields": best_of(
                args.repeats, wide_metric_page(metric, fields, segs)),
            "tails": best_of(args.repeats, page(page="tails", metric=metric)),
            "alerts": best_of(args.repeats, page(page="alerts")),
        }
        for label, figures in (("queries", query_s), ("page", page_s)):
            print(f"{label}: " + ", ".join(f"{k} {v:.3f} s" for k, v in figures.items()),
                  file=sys.stderr)
        within = all(page_s[k] < TARGET_S for k in ("overview", "metric"))
        print(json.dumps({
            "benchmark": "dashboard",
            "database": "postgresql",
            "metrics": args.metrics, "segments": args.segments, "days": args.days,
            "values": rows, "metric_values_mib": round(size / 2**20, 1),
            "repeats": args.repeats,
            "queries_s": query_s, "page_s": page_s,
            "target_s": TARGET_S, "within_target": within,
        }))


if __name__ == "__main__":
    main()
