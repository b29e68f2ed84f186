"""The sampled violations of an assertion, read out of its windows' states.

Every stage stores a window's state with its values (``WindowResult.state``, or
``StoredState`` read back), and an assertion's state holds its sample of violating events
(:mod:`metrics.assertions`), a consistency check's its violating keys with their values
(:mod:`metrics.key_consistency`: the key as ``id``); this lays them out as a table, one row
per example. Pure: states in, a DataFrame out.

>>> import metrics
>>> from monitor import Monitor
>>> from monitor.research import run
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"view_id": "int", "score": "float"})
>>> spec = mon.metric("high_score", "home",
...                   metrics.assertion("score", id="view_id", keep=("ts",)), window="1h")
>>> events = pd.DataFrame({"ts": ["2026-01-01T00:10:00Z", "2026-01-01T00:50:00Z"],
...                        "view_id": [7, 8], "score": [0.0, 0.5]})
>>> examples(spec, run(spec, events).windows)[["segment", "id", "severity", "ts"]]
  segment  id  severity                         ts
0       *   8       0.5  2026-01-01T00:50:00+00:00
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import pandas as pd

from metrics.assertions import Assertion
from metrics.base import Aggregate
from metrics.key_consistency import Consistency
from metrics.labelled import Labelled
from monitor.spec import MetricSpec
from monitor.storage.records import StoredState, WindowResult

_WINDOW = ["segment", "window_start", "window_end"]


def examples(metric: MetricSpec, windows: Iterable[WindowResult | StoredState]
             ) -> pd.DataFrame:
    """One row per sampled violation of each window: its segment and window, then ``id``,
    ``severity`` and the fields the assertion keeps; windows in the order given, each
    window's examples in sample order (by hash of the id)."""
    inner = assertion_of(metric.name, metric.aggregate)
    rows = [{"segment": window.segment, "window_start": window.window_start,
             "window_end": window.window_end, **example}
            for window, example in window_examples(metric.aggregate, windows)]
    columns = [*_WINDOW, "id", "severity", *inner.keep]
    return pd.DataFrame(rows, columns=columns)


def assertion_of(name: str, aggregate: Aggregate) -> Assertion | Consistency:
    """The assertion or consistency check ``aggregate`` is (or wraps, with labels); a
    ValueError naming metric ``name`` when it is none."""
    inner = aggregate.inner if isinstance(aggregate, Labelled) else aggregate
    if not isinstance(inner, Assertion | Consistency):
        raise ValueError(f"metric {name!r} is not an assertion (its aggregate is "
                         f"{inner.kind}): it keeps no examples")
    return inner


def violation_fields(aggregate: Aggregate) -> tuple[str, str]:
    """The value fields that count an assertion's violations and give their rate: its
    violating events, or a consistency check's violating keys.

    >>> import metrics
    >>> violation_fields(metrics.consistency("fav", key="user_id"))
    ('violating_keys', 'violating_key_rate')
    """
    if isinstance(assertion_of("", aggregate), Consistency):
        return "violating_keys", "violating_key_rate"
    return "violations", "violation_rate"


W = TypeVar("W", bound=WindowResult | StoredState)


def window_examples(aggregate: Aggregate, windows: Iterable[W]
                    ) -> Iterator[tuple[W, dict[str, Any]]]:
    """Each window with each of its sampled violations (id, severity, kept fields), in
    the order given and then in sample order; the aggregate is an assertion's (see
    :func:`assertion_of`), the one that made the states."""
    inner = assertion_of("", aggregate)
    for window in windows:
        if window.state is None:
            continue
        state: Any = aggregate.state_from_bytes(window.state)
        if isinstance(aggregate, Labelled):
            state = state.inner  # the assertion's own state, within the label counts
        for example in inner.examples(state):
            yield window, example
