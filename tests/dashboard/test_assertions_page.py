"""The assertions page on the seeded week (AppTest): the latest window of every
assertion, the violation rate per window with its threshold and alerts, and the sampled
violations of the newest windows, checked against the stored states, filtered by
segment, stage and range, and downloaded as the export's JSON lines."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.runtime.media_file_storage import MediaFileKind
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest, app_test

from dashboard import assertion_table
from dashboard.assertion_table import Shown
from dashboard.context import fmt
from monitor.assertion_examples import window_examples
from monitor.cli.main import cli
from monitor.storage.store import SqlStore
from tests.dashboard.conftest import AppFactory
from tests.dashboard.helpers import charts, marks, texts
from tests.dashboard.seed import SLOW_VIEWS, Seeded
from tests.stored_states import stored_states

NAME = SLOW_VIEWS.name


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """What the page's download buttons would send, by the file name they offer (AppTest
    drops its media files when a run ends)."""
    kept: dict[str, bytes] = {}

    class Kept(MemoryMediaFileStorage):
        def load_and_get_id(self, path_or_data: str | bytes, mimetype: str,
                            kind: MediaFileKind, filename: str | None = None) -> str:
            assert isinstance(path_or_data, bytes) and filename is not None
            kept[filename] = path_or_data
            return super().load_and_get_id(path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Kept)
    yield kept


def stored_examples(url: str, segments: list[str], newest: int) -> list[dict[str, Any]]:
    """The examples of the ``newest`` windows of ``segments``, read straight from the
    stored states: newest window first, then segment, each in sample order."""
    with SqlStore.open(url) as store:
        states = store.read_states(NAME, 1, "batch", pd.Timestamp("2026-01-01", tz="UTC"),
                                   pd.Timestamp("2027-01-01", tz="UTC"))
    starts = sorted({s.window_start for s in states if s.segment in segments})[-newest:]
    chosen = sorted((s for s in states if s.segment in segments and s.window_start in starts),
                    key=lambda s: (-pd.Timestamp(s.window_start).value, s.segment))
    return [{"window": pd.Timestamp(w.window_start), "segment": w.segment, **e}
            for w, e in window_examples(SLOW_VIEWS.aggregate, chosen)]


def newest_overall_values(url: str, name: str) -> dict[str, float]:
    """The stored values of ``name``'s newest overall batch window, by field."""
    with SqlStore.open(url) as store:
        values = store.read_values(metric=name, stage="batch", segment="*", limit=None)
    newest = values[values["window_start"] == values["window_start"].max()]
    return dict(zip(newest["field"], newest["value"], strict=True))


def example_table(app: AppTest) -> pd.DataFrame:
    [table] = [d.value for d in app.dataframe if "severity" in d.value.columns]
    return table


def test_the_page_lists_the_latest_violations_with_their_fields(
    seeded: Seeded, run_app: AppFactory, downloads: dict[str, bytes]
) -> None:
    app = run_app(seeded.url, page="assertions", metric=NAME)
    assert [t.value for t in app.title] == ["Assertions"]
    latest = app.dataframe[0].value.set_index("assertion")
    # the example app's consistency check is listed too, its violating keys as violations
    assert sorted(latest.index) == sorted([NAME, "fav_consistency"])
    assert set(latest["stage"]) == {"batch"}
    for name, count, rate in [(NAME, "violations", "violation_rate"),
                              ("fav_consistency", "violating_keys", "violating_key_rate")]:
        values = newest_overall_values(seeded.url, name)
        assert latest.loc[name, "violations"] == fmt(values[count])
        assert latest.loc[name, "violation rate"] == fmt(values[rate])
    assert app.selectbox(key="assertion_metric").value == NAME
    table = example_table(app)
    assert list(table.columns) == ["window (UTC)", "segment", "id", "severity", "user_id",
                                   "device", "latency_ms"]
    expected = stored_examples(seeded.url, ["*"], 24)
    assert 0 < len(table) == len(expected)
    assert list(table["id"]) == [e["id"] for e in expected]
    assert list(table["latency_ms"]) == [e["latency_ms"] for e in expected]
    assert list(table["window (UTC)"]) == [f"{e['window']:%Y-%m-%d %H:%M}" for e in expected]
    assert (table["latency_ms"] > 1500).all()  # the rule: latency_ms > 1500
    assert f"{len(table)} sampled violations of 24 windows" in texts(app)

    [(spec, data)] = charts(app)
    assert marks(spec)[:2] == ["line", "rule"]
    series, threshold = data[0], data[1]
    assert set(series["field"]) == {"violation_rate"} and set(series["segment"]) == {"*"}
    assert list(threshold["bound"]) == [0.02]

    [button] = app.get("download_button")
    assert button.proto.label == f"Download these {len(table)} examples (JSON lines)"
    lines = downloads[f"{NAME}-batch.jsonl"].decode().splitlines()
    [command] = [c.value for c in app.code]
    assert command.startswith(f"monitor assertions export {NAME} --stage batch --version 1 ")
    # the command the page gives writes the very lines it offers
    out = CliRunner().invoke(cli, [*shlex.split(command)[1:-2], "--out", "-",
                                   "--database-url", seeded.url])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == lines
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(table["id"])


def test_filters_by_segment_range_and_windows_and_a_link_preselects(
    seeded: Seeded, run_app: AppFactory, downloads: dict[str, bytes]
) -> None:
    app = run_app(seeded.url, page="assertions", metric=NAME, segment="country=BR",
                  stage="batch")
    assert app.multiselect(key=f"assertion_segments:{NAME}").value == ["*", "country=BR"]
    app.multiselect(key=f"assertion_segments:{NAME}").set_value(["country=BR"]).run()
    app.radio(key="assertion_range").set_value("last 30 days").run()
    app.selectbox(key=f"assertion_windows:{NAME}").set_value(168).run()
    table = example_table(app)
    expected = stored_examples(seeded.url, ["country=BR"], 168)
    assert set(table["segment"]) == {"country=BR"}
    assert list(table["id"]) == [e["id"] for e in expected]
    spike = table[table["window (UTC)"].str.startswith("2026-03-04 1")]
    assert len(spike) > 0  # the latency spike's violations are listed
    [(_, data)] = charts(app)
    assert set(data[0]["segment"]) == {"country=BR"}
    assert len(data[0]) > 24 * 4  # the longer range
    markers = data[2]
    assert "firing" in set(markers["transition"])  # the spike fired the rule in BR
    lines = [json.loads(line) for line in downloads[f"{NAME}-batch.jsonl"].decode()
             .splitlines()]
    assert {line["segment"] for line in lines} == {"country=BR"}
    assert len(lines) == len(table)


def test_a_long_listing_stops_at_whole_windows_within_the_row_limit(
    seeded: Seeded, run_app: AppFactory, downloads: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assertion_table, "MAX_EXAMPLES", 10)
    app = run_app(seeded.url, page="assertions", metric=NAME)
    app.radio(key="assertion_range").set_value("last 30 days").run()
    app.selectbox(key=f"assertion_windows:{NAME}").set_value(168).run()
    table = example_table(app)
    every = stored_examples(seeded.url, ["*"], 10_000)  # newest first
    shown, rest = every[:len(table)], every[len(table):]
    assert list(table["id"]) == [e["id"] for e in shown] and 0 < len(table) <= 10
    oldest = shown[-1]["window"]
    assert rest[0]["window"] < oldest  # whole windows only
    next_window = [e for e in rest if e["window"] == rest[0]["window"]]
    assert len(table) + len(next_window) > 10  # one window more would pass the limit
    assert "windows are listed: older ones would pass 10 rows" in texts(app)
    lines = downloads[f"{NAME}-batch.jsonl"].decode().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(table["id"])
    [command] = [c.value for c in app.code]
    since = pd.Timestamp(shlex.split(command)[shlex.split(command).index("--since") + 1])
    assert rest[0]["window"] < since <= oldest


def test_the_download_is_the_export_with_secrets_masked() -> None:
    """A kept field that holds a secret-looking URL is masked in the table and in the
    downloaded lines alike; the rest of the line stays the export's."""
    import metrics
    from monitor import Monitor
    from monitor.research import run
    from monitor.storage.database_url import mask_text

    mon = Monitor()
    mon.stream("home", schema={"view_id": "int", "device": "str", "latency_ms": "float"})
    spec = mon.metric(NAME, "home", metrics.assertion("latency_ms > 1500", id="view_id",
                                                      keep=("device", "latency_ms")))
    start = pd.Timestamp("2026-03-04T12:00:00Z")
    events = pd.DataFrame({
        "ts": [start + timedelta(minutes=m) for m in (1, 2)], "view_id": [1, 2],
        "device": ["postgresql://u:pw-Leak-1@db/x", "ios"], "latency_ms": [2000.0, 1800.0]})
    stored = stored_states(run(spec, events).windows)
    shown = Shown(NAME, 1, "batch", spec.aggregate, stored)
    assert "pw-Leak-1" not in shown.table(mask_text).to_string()
    masked = [json.loads(line) for line in shown.jsonl(mask_text).splitlines()]
    plain = [json.loads(line) for line in shown.jsonl(str).splitlines()]
    assert "pw-Leak-1" not in json.dumps(masked) and "pw-Leak-1" in json.dumps(plain)
    assert [m["id"] for m in masked] == [p["id"] for p in plain] and len(plain) == 2
    assert [m for m in masked if m["id"] == 2] == [p for p in plain if p["id"] == 2]
