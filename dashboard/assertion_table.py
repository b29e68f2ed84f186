"""An assertion's sampled violations as the assertions page shows them and lets them be
downloaded: a table, newest window first, and the export's JSON lines of the same
examples.

Pure: a stored definition's aggregate and stored states in. The download is
:func:`monitor.assertion_export.example_lines` (what ``monitor assertions export`` writes),
so a file from the page and one from the command line read the same.

>>> import metrics
>>> import pandas as pd
>>> from monitor import Monitor
>>> from monitor.research import run
>>> from monitor.storage.records import StoredState
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"view_id": "int", "score": "float"})
>>> spec = mon.metric("high_score", "home",
...                   metrics.assertion("score > 0.9", id="view_id", keep=("score",)),
...                   window="1h")
>>> events = pd.DataFrame({"ts": ["2026-01-01T00:10:00Z", "2026-01-01T01:50:00Z"],
...                        "view_id": [7, 8], "score": [0.95, 0.99]})
>>> stored = [StoredState(w.segment, w.window_start, w.window_end, w.state, w.rows)
...           for w in run(spec, events).windows]
>>> shown = Shown("high_score", 1, "batch", spec.aggregate, stored)
>>> shown.table(str)[["window (UTC)", "segment", "id", "severity", "score"]]
       window (UTC) segment  id  severity  score
0  2026-01-01 01:00       *   8       1.0   0.99
1  2026-01-01 00:00       *   7       1.0   0.95
>>> len(shown.jsonl(str).splitlines())
2
>>> kept, cut = newest_within(spec.aggregate, stored, limit=1)  # the newest window only
>>> [f"{s.window_start:%H:%M}" for s in kept], cut
(['01:00'], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from metrics.base import Aggregate
from monitor.assertion_examples import assertion_of, window_examples
from monitor.assertion_export import example_lines
from monitor.storage.records import StoredState

Scrub = Callable[[str], str]
WINDOW_COLUMNS = ["window (UTC)", "segment", "id", "severity"]
MAX_EXAMPLES = 2_000  # rows a page shows: a sample keeps up to 10,000 per window


def newest_within(aggregate: Aggregate, states: Sequence[StoredState],
                  limit: int = MAX_EXAMPLES) -> tuple[list[StoredState], bool]:
    """The states of the newest window starts whose examples come to at most ``limit``
    (the newest start's always, whatever their number), whole starts only so the shown
    windows stay a range the export can name; and whether older ones were left out."""
    by_start: dict[Any, list[StoredState]] = {}
    for state in states:
        by_start.setdefault(pd.Timestamp(state.window_start), []).append(state)
    kept: list[StoredState] = []
    total = 0
    for start in sorted(by_start, reverse=True):
        count = sum(1 for _ in window_examples(aggregate, by_start[start]))
        if kept and total + count > limit:
            return sorted(kept, key=lambda s: (pd.Timestamp(s.window_start), s.segment)), True
        kept += by_start[start]
        total += count
    return sorted(kept, key=lambda s: (pd.Timestamp(s.window_start), s.segment)), False


@dataclass(frozen=True)
class Shown:
    """The examples of some stored windows of one assertion version in one stage."""

    metric: str
    version: int
    stage: str
    aggregate: Aggregate  # the stored definition's, which made the states
    states: Sequence[StoredState]

    def table(self, scrub: Scrub) -> pd.DataFrame:
        """One row per sampled violation: its window and segment, id, severity and the
        kept fields; newest window first, then by segment, each window's examples in
        sample order. Text is passed through ``scrub`` (nothing that looks like a secret
        reaches the page)."""
        keep = assertion_of(self.metric, self.aggregate).keep
        newest = sorted(self.states, key=lambda s: (-pd.Timestamp(s.window_start).value,
                                                    s.segment))
        rows = [{"window (UTC)": f"{pd.Timestamp(window.window_start):%Y-%m-%d %H:%M}",
                 "segment": scrub(window.segment), "id": _shown(example["id"], scrub),
                 "severity": example["severity"],
                 **{name: _shown(example[name], scrub) for name in keep}}
                for window, example in window_examples(self.aggregate, newest)]
        return pd.DataFrame(rows, columns=[*WINDOW_COLUMNS, *keep])

    def jsonl(self, scrub: Scrub) -> str:
        """The same examples as ``monitor assertions export`` writes them (windows by
        start, then segment), each line passed through ``scrub``."""
        return "".join(f"{scrub(line)}\n" for line in example_lines(
            self.metric, self.version, self.stage, self.aggregate, self.states))


def _shown(value: Any, scrub: Scrub) -> Any:
    """A value for a table cell: text scrubbed, a list as its text, numbers as they are."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return scrub(str(value))
    return value
