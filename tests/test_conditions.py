"""Rate conditions parsed once give what DataFrame.eval gives, row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.aggregates import Rate
from metrics.conditions import Condition

EXPRESSIONS = [
    "latency_ms > 500",
    "latency_ms >= 500 and device == 'ios'",
    "latency_ms > 500 or clicked",
    "not clicked",
    "100 < latency_ms <= 900",
    "latency_ms / 1000 > 0.25 and not (device != 'web' or clicked)",
    "-latency_ms < -300",
    "score ** 2 % 1 > 0.1",
]


def frame(seed: int, rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(5.5, 1.0, rows)
    latency[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame({
        "latency_ms": latency,
        "device": rng.choice(["ios", "android", "web"], rows),
        "clicked": rng.random(rows) < 0.3,
        "score": rng.random(rows),
    })


def eval_rows(events: pd.DataFrame, text: str) -> pd.Series:
    """What DataFrame.eval gives for a row condition (its stubs allow any scalar too)."""
    rows = events.eval(text)
    assert isinstance(rows, pd.Series)
    return rows


@pytest.mark.parametrize("text", EXPRESSIONS)
@pytest.mark.parametrize("seed", [1, 2])
def test_same_rows_as_dataframe_eval(text: str, seed: int) -> None:
    events = frame(seed)
    condition = Condition(text)
    assert condition.fast
    ours = pd.Series(condition.evaluate(events), index=events.index)
    pandas = pd.Series(events.eval(text), index=events.index)
    pd.testing.assert_series_equal(ours, pandas, check_names=False)


@pytest.mark.parametrize("text", ["device in ['ios', 'web']",
                                  "latency_ms * 2 + 1 > score * 1000 | clicked",
                                  "latency_ms > 500 & ~clicked"])
def test_other_expressions_go_to_dataframe_eval(text: str) -> None:
    """``in`` and ``&``/``|`` (looser than comparisons in pandas.eval, not in Python)."""
    events = frame(3)
    condition = Condition(text)
    assert not condition.fast
    assert condition.evaluate(events).tolist() == eval_rows(events, text).tolist()


def test_names_are_the_columns_read() -> None:
    assert Condition("a > 1 and b == True or c is None").names == ["a", "b", "c"]


@pytest.mark.parametrize("text", ["latency_ms > 500", "latency_ms > 500 or clicked",
                                  "not clicked", "100 < latency_ms <= 900",
                                  "latency_ms != 300.5 and not (score >= 0.5 or clicked)",
                                  "clicked == True", "score < 1 and latency_ms == latency_ms"])
@pytest.mark.parametrize("seed", [1, 2])
def test_numpy_arrays_give_what_the_series_give(text: str, seed: int) -> None:
    """Comparisons on numpy float and bool arrays (NaN included) are the Series' rows."""
    events = frame(seed)
    condition = Condition(text)
    assert condition.comparisons
    arrays = {name: events[name].to_numpy() for name in condition.names}
    ours = condition.evaluate_arrays(arrays)
    assert ours is not None
    assert ours.tolist() == condition.evaluate(events).tolist() == eval_rows(events, text).tolist()


@pytest.mark.parametrize("text", ["device == 'ios'", "latency_ms / 1000 > 0.25",
                                  "-latency_ms < -300", "not latency_ms", "1 > 0"])
def test_numpy_arrays_left_to_the_series_beyond_numeric_comparisons(text: str) -> None:
    """A string column, arithmetic, ``~`` of floats, no column: None, the Series path."""
    events = frame(4)
    condition = Condition(text)
    arrays = {name: events[name].to_numpy() for name in condition.names}
    assert condition.evaluate_arrays(arrays) is None


@pytest.mark.parametrize("text", ["latency_ms > 500", "latency_ms > 500 or clicked",
                                  "100 < latency_ms <= 900 and not clicked"])
def test_a_rate_counts_the_same_on_numpy_and_nullable_columns(text: str) -> None:
    """A rate judges numpy float/bool columns with numpy (as an assertion does) and
    nullable ones through pandas: the same hits and rows, a NaN or NA left out of both."""
    events = frame(5)
    nullable = events.astype({"latency_ms": "Float64", "clicked": "boolean"})
    numpy_counts = Rate(text).row_counts(events)
    pandas_counts = Rate(text).row_counts(nullable)
    known = ~np.isnan(events["latency_ms"].to_numpy())
    expected = eval_rows(events, text).to_numpy() & known
    for counts in (numpy_counts, pandas_counts):
        assert counts["rows"].tolist() == known.tolist()
        assert counts["hits"].tolist() == expected.tolist()
