"""An assertion's stored examples as JSON lines, one per sampled violation, for a
labelling tool.

Pure: a stored definition and its stored states in, lines out. Each line is one object:
``metric``, ``version``, ``stage``, ``segment``, ``window_start`` and ``window_end``
(ISO 8601 UTC, ``Z``), the event's ``id``, its ``severity`` and ``fields`` (the columns
the assertion keeps, under their own names). Windows go by start, then segment (Python
string order, the same whichever database stored them), each window's examples in sample
order (by hash of the id), so the same states always give the same file.

The states are decoded with the aggregate of the stored definition, the one that made
them, not with the app's of today: an assertion edited since (another ``keep`` or ``k``)
is a new version and cannot misread the old one's bytes.

>>> import metrics
>>> from monitor import Monitor
>>> from monitor.research import run
>>> from monitor.storage.records import StoredState
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"view_id": "int", "score": "float"})
>>> spec = mon.metric("high_score", "home",
...                   metrics.assertion("score", id="view_id", keep=("score",)), window="1h")
>>> events = pd.DataFrame({"ts": ["2026-01-01T00:10:00Z", "2026-01-01T00:50:00Z"],
...                        "view_id": [7, 8], "score": [0.0, 0.5]})
>>> stored = [StoredState(w.segment, w.window_start, w.window_end, w.state, w.rows)
...           for w in run(spec, events).windows]
>>> for line in example_lines("high_score", 1, "research", spec.aggregate, stored):
...     print(line)  # doctest: +NORMALIZE_WHITESPACE
{"metric": "high_score", "version": 1, "stage": "research", "segment": "*",
 "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z",
 "id": 8, "severity": 0.5, "fields": {"score": 0.5}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, cast

import pandas as pd

import metrics  # noqa: F401  (registers every built-in aggregate kind, to decode stored ones)
from metrics.base import Aggregate, aggregate_from_dict
from monitor.assertion_examples import assertion_of, window_examples
from monitor.storage.records import MetricDefinition, StoredState


def stored_assertion(definition: MetricDefinition) -> Aggregate:
    """The aggregate of a stored definition, the one that made its stored states; a
    ValueError naming the metric when it is no assertion."""
    aggregate = aggregate_from_dict(dict(cast(Mapping[str, Any], definition.spec["aggregate"])))
    assertion_of(definition.name, aggregate)
    return aggregate


def example_lines(metric: str, version: int, stage: str, aggregate: Aggregate,
                  windows: Iterable[StoredState]) -> Iterator[str]:
    """One JSON line (no newline) per sampled violation of ``windows``; ``aggregate`` is
    the stored definition's, a ValueError when it is not an assertion's."""
    keep = assertion_of(metric, aggregate).keep
    ordered = sorted(windows, key=lambda w: (_utc(w.window_start), w.segment))
    for window, example in window_examples(aggregate, ordered):
        line = {"metric": metric, "version": version, "stage": stage,
                "segment": window.segment, "window_start": iso_utc(window.window_start),
                "window_end": iso_utc(window.window_end), "id": example["id"],
                "severity": _severity(example["severity"]),
                "fields": {name: example[name] for name in keep}}
        # strict JSON: a labelling tool's parser need not accept NaN or Infinity
        yield json.dumps(line, ensure_ascii=False, allow_nan=False)


def _severity(value: float) -> float | str:
    """A finite severity as it is; an infinite one (a per-event function may return it)
    as the string "Infinity", which strict JSON has no number for."""
    return value if math.isfinite(value) else "Infinity"


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def iso_utc(moment: datetime) -> str:
    """A moment as ISO 8601 UTC with a ``Z``, as the lines write window bounds."""
    return _utc(moment).isoformat().replace("+00:00", "Z")
