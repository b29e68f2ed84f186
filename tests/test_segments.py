"""Segment labels are unambiguous, reversible, bounded and storable, and ordinary values
keep the labels they always had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

import metrics
from metrics.drift import CategoricalProfile
from monitor import Monitor, Threshold
from monitor.alerts.records import alert_labels
from monitor.cli.main import cli
from monitor.engine import Engine
from monitor.research import evaluate
from monitor.segments import (
    MAX_VALUE_BYTES,
    NULL_LABEL,
    escape,
    parse_label,
    segment_label,
)
from monitor.storage.database import Database
from monitor.storage.profiles import load_profile
from monitor.storage.results import read_values
from tests.labels_app import mon as labels_app

# Any character, lone surrogates included (JSON's "\ud800" decodes to one).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
NAMES = st.text(st.characters(exclude_categories=()), min_size=1, max_size=12)
# What values looked like before labels were escaped, and must still look like.
ORDINARY = st.text(st.characters(exclude_categories=("Cc", "Cs"),
                                 exclude_characters=",=%"), max_size=40).filter(
    lambda text: not text.startswith("*") and text != NULL_LABEL)


def todays_label(pairs: dict[str, object]) -> str:
    """How labels were made before they were escaped (engine._segment_codes, 959654b)."""
    def value(v: object) -> str:
        if v is None:
            return NULL_LABEL
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    return ",".join(f"{name}={value(v)}" for name, v in pairs.items()) or "*"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, st.none() | ANY_TEXT, max_size=4))
@example({"country": "=,*"})
@example({"country": "a,x=y"})
@example({"country": "%3D"})
@example({"country": "SE\x00", "*": "*"})
@example({"note": NULL_LABEL, "other": None})
@example({"country": "\ud800\x85\x9f"})
def test_a_label_gives_back_the_values_it_was_made_from(values: dict[str, str | None]
                                                        ) -> None:
    label = segment_label(values)
    assert parse_label(label) == values
    label.encode("utf-8")  # no lone surrogate: every database can hold it
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in label)
    assert (label == "*") == (not values)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(st.characters(exclude_categories=("Cc", "Cs"),
                                             exclude_characters=",=%*"), min_size=1,
                               max_size=12), ORDINARY, max_size=4))
def test_ordinary_values_keep_todays_labels(values: dict[str, str]) -> None:
    assert segment_label(values) == todays_label(values)  # type: ignore[arg-type]


def test_todays_labels_byte_for_byte_through_the_engine() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str", "rank": "int?", "ok": "bool?"})
    spec = mon.metric("n", "s", metrics.count(), window="1h",
                      segment_by=["country", "rank", "ok"])
    events = pd.DataFrame({"ts": "2026-01-01T00:00:00Z", "x": 1.0,
                           "country": ["BR", "SE", "São Paulo", "iOS 17.2 (beta)", "SE"],
                           "rank": [1, 2, None, 10, 1], "ok": [True, False, True, None, None]})
    segments = set(evaluate(spec, events)["segment"])
    assert {s.encode() for s in segments} == {
        b"*", b"country=BR,rank=1,ok=True", b"country=SE,rank=2,ok=False",
        "country=São Paulo,rank=<null>,ok=True".encode(),
        b"country=iOS 17.2 (beta),rank=10,ok=<null>", b"country=SE,rank=1,ok=<null>"}


def test_values_with_label_syntax_are_segments_of_their_own() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str", "device": "str?"})
    spec = mon.metric("n", "s", metrics.count(), window="1h", segment_by=["country", "device"])
    # Unescaped, both rows were labelled "country=a,device=b,device=<null>": one segment.
    rows = [("a,device=b", None), ("a", "b,device=<null>"), ("=,*", "ios"), ("*", "%41")]
    events = pd.DataFrame({"ts": "2026-01-01T00:00:00Z", "x": 1.0,
                           "country": [c for c, _ in rows], "device": [d for _, d in rows]})
    values = evaluate(spec, events)
    by_segment = values[values["segment"] != "*"].set_index("segment")["value"]
    countries = [parse_label(s)["country"] for s in by_segment.index]
    assert sorted(countries, key=str) == sorted(c for c, _ in rows)  # (a None would differ)
    assert [parse_label(s) for s in by_segment.index] == [
        {"country": c, "device": d} for c, d in sorted(
            rows, key=lambda r: segment_label({"country": r[0], "device": r[1]}))]
    assert (by_segment == 1.0).all()


def test_a_long_value_is_labelled_by_its_start_and_a_hash_of_all_of_it() -> None:
    long = "é" * 10_000
    label = segment_label({"query": long})
    assert len(label.encode()) <= len("query=") + MAX_VALUE_BYTES
    assert label == segment_label({"query": long})  # deterministic
    assert label != segment_label({"query": long[:-1] + "e"})  # the end counts too
    query = parse_label(label)["query"]
    assert query is not None and query.startswith("é" * 96 + "…(sha256 ")
    # A cut never splits an escaped character: NUL is 3 characters escaped, a C1 control 6.
    for filler in ("\x00", "\x85", "\ud800", "a\x00"):
        parsed = parse_label(segment_label({"q": filler * 500}))["q"]
        assert parsed is not None and set(parsed.split("…")[0]) <= set(filler)


def test_long_values_get_the_same_label_in_every_chunk() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str"})
    spec = mon.metric("sum", "s", metrics.sum_of("x"), window="1h", segment_by=["country"])
    rng = np.random.default_rng(4)
    values = ["y" * 5_000 + str(i) for i in range(3)]
    events = pd.DataFrame({"ts": "2026-01-01T00:00:00Z", "x": rng.random(300),
                           "country": rng.choice(values, 300)})
    clean, _ = spec.stream.schema.validate(events)
    whole, chunked = Engine([spec]), Engine([spec])
    whole.update(clean)
    for part in np.array_split(np.arange(len(clean)), 7):
        chunked.update(clean.iloc[part])
    assert whole.values("x") == chunked.values("x")
    assert len({v.segment for v in whole.values("x")}) == 4


def test_alert_labels_hold_the_values_not_their_escapes() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str"})
    spec = mon.metric("m", "s", metrics.mean("x"), segment_by=["country"],
                      alerts=[Threshold(above=1)])
    labels = alert_labels(spec, spec.alerts[0], segment_label({"country": "=,*"}), "batch")
    assert labels["country"] == "=,*" and labels["segment"] == "country=%3D%2C*"
    null = alert_labels(spec, spec.alerts[0], segment_label({"country": None}), "batch")
    assert null["country"] == NULL_LABEL


@pytest.mark.parametrize("text", ["country", "country=BR,", "=BR", "a=1,a=2"])
def test_text_that_is_not_a_label_says_so(text: str) -> None:
    with pytest.raises(ValueError, match=r"label|twice"):
        parse_label(text)


def test_escape_is_only_for_what_means_something() -> None:
    assert escape("BR") == "BR" and escape("a*b") == "a*b" and escape("*b") == "%2Ab"


# -- stored: `monitor research run` (recorded) on SQLite and real Postgres --------------


def test_research_run_stores_and_reads_back_nul_and_long_values(
        results_url: str, tmp_path: Path) -> None:
    # Random letters: a repetitive value would fit the index entry compressed.
    long = "".join(np.random.default_rng(5).choice(list("abcdefghijklmnop"), 10_000))
    countries = ["SE\x00", long, "=,*", "BR"]
    data = tmp_path / "events.jsonl"
    data.write_text("".join(
        json.dumps({"ts": f"2026-05-01T00:{i:02d}:00Z", "latency_ms": float(i),
                    "country": countries[i % 4], "device": "ios"}) + "\n"
        for i in range(40)))
    reference = tmp_path / "reference.jsonl"
    reference.write_text("".join(
        json.dumps({"ts": "2026-04-01T00:00:00Z", "latency_ms": 1.0, "country": c}) + "\n"
        for c in ["SE\x00", "BR", "BR", "x" * 3_000]))
    app = ["--app", "tests.labels_app:mon", "research", "run"]
    common = ["--data", str(data), "--database-url", results_url]

    latency = CliRunner().invoke(cli, [*app, "latency", *common], catch_exceptions=False)
    drift = CliRunner().invoke(cli, [*app, "country_drift", *common,
                                     "--reference", str(reference)], catch_exceptions=False)

    assert latency.exit_code == 0, latency.output
    assert drift.exit_code == 0, drift.output
    assert "recorded research run of latency" in latency.stderr
    with Database(results_url) as database, database.connect() as conn:
        stored = read_values(conn, metric="latency", stage="research")
        profile = load_profile(conn, "countries")
    segments = {s: parse_label(s) for s in stored["segment"]}
    by_country = {v["country"]: v for v in segments.values() if v}
    assert set(by_country) == {"SE\x00", "=,*", "BR", parse_label(
        segment_label({"country": long}))["country"]}
    assert all(v["device"] == "ios" for v in by_country.values())
    assert stored.groupby("segment")["count"].first().to_dict() == {
        "*": 40, **{segment_label({"country": c, "device": "ios"}): 10 for c in countries}}
    country = profile.column("country")
    assert isinstance(country, CategoricalProfile)
    assert set(country.categories) == {"SE\x00", "BR", "x" * 3_000}
    assert labels_app.get("latency").segment_by == ("country", "device")
