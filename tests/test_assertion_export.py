"""monitor.assertion_export on states made in research: strict JSON whatever the
severity, and the same lines whatever order the database returned the windows in."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

import metrics
from monitor import Monitor
from monitor.assertion_export import example_lines
from monitor.research import run
from monitor.storage.records import StoredState


def stored(mon: Monitor, name: str, events: pd.DataFrame) -> list[StoredState]:
    spec = mon.metrics[name]
    return [StoredState(w.segment, w.window_start, w.window_end, w.state, w.rows)
            for w in run(spec, events).windows if w.state is not None]


def app() -> Monitor:
    mon = Monitor("export")
    mon.stream("home", schema={"view_id": "int", "country": "str", "score": "float"})

    @mon.metric("boundless", "home", window="1h", segment_by=["country"],
                aggregate=metrics.assertion(id="view_id", keep=("score",), k=3))
    def boundless(events: pd.DataFrame) -> pd.Series:
        return events["score"] / (1.0 - events["score"])  # +inf where score is 1

    mon.metric("mean_score", "home", metrics.mean("score"), window="1h")
    return mon


def events() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    score = rng.random(n).round(3)
    score[::7] = 1.0
    return pd.DataFrame({
        "ts": pd.Timestamp("2026-01-01T00:00:00Z") + pd.to_timedelta(
            np.sort(rng.integers(0, 3 * 3600, n)), unit="s"),
        "view_id": np.arange(n), "country": rng.choice(["SE", "DE"], n), "score": score})


def test_lines_are_strict_json_with_an_infinite_severity_as_a_string() -> None:
    mon = app()
    lines = list(example_lines("boundless", 1, "batch", mon.metrics["boundless"].aggregate,
                               stored(mon, "boundless", events())))
    assert len(lines) == 3 * 3 * 3  # 3 windows x ('*', SE, DE) x k
    parsed = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
              for line in lines]
    infinite = [p for p in parsed if p["fields"]["score"] == 1.0]
    assert infinite and all(p["severity"] == "Infinity" for p in infinite)
    finite = [p for p in parsed if p["fields"]["score"] != 1.0]
    assert finite and all(p["severity"] == pytest.approx(p["fields"]["score"]
                                                         / (1 - p["fields"]["score"]))
                          for p in finite)


def test_same_lines_whatever_order_the_windows_come_in() -> None:
    mon = app()
    windows = stored(mon, "boundless", events())
    aggregate = mon.metrics["boundless"].aggregate
    first = list(example_lines("boundless", 1, "batch", aggregate, windows))
    random.Random(0).shuffle(windows)
    assert list(example_lines("boundless", 1, "batch", aggregate, windows)) == first
    starts = [(json.loads(line)["window_start"], json.loads(line)["segment"])
              for line in first]
    assert starts == sorted(starts)


def test_a_metric_that_is_no_assertion_is_refused_by_name() -> None:
    mon = app()
    with pytest.raises(ValueError, match="metric 'mean_score' is not an assertion"):
        list(example_lines("mean_score", 1, "batch", mon.metrics["mean_score"].aggregate,
                           stored(mon, "mean_score", events())))
