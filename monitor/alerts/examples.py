"""What a firing assertion's notification adds: a few ids from the window's sample of
violating events, and the command that exports all of it.

An assertion (:mod:`metrics.assertions`) keeps a sample of the events that violate it in
each window's state, and every stage hands the state to alert evaluation with the values
(``WindowResult.state``), so the ids come from the very window that fired, in batch and in
streaming alike. The ids named are the first of the window's sample in sample order (by
hash of the id), which are also the first lines ``monitor assertions export`` writes for
that window. Pure: a window in, text out.

>>> import metrics
>>> import pandas as pd
>>> from monitor import Monitor
>>> from monitor.research import run
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"view_id": "int", "score": "float"})
>>> spec = mon.metric("high_score", "home", metrics.assertion("score > 0.9", id="view_id"),
...                   window="1h")
>>> events = pd.DataFrame({"ts": ["2026-01-01T00:10:00Z"] * 5, "view_id": [1, 2, 3, 4, 5],
...                        "score": [0.95, 0.99, 0.2, 0.97, 0.93]})
>>> [window] = run(spec, events).windows
>>> print(examples_note(spec, 2, "batch", window))  # doctest: +NORMALIZE_WHITESPACE
example ids 4, 2, 1 (3 of the 4 sampled, 4 violations)
all sampled: `monitor assertions export high_score --stage batch --version 2
  --segment '*' --since 2026-01-01T00:00:00Z --until 2026-01-01T01:00:00Z
  --out high_score.jsonl`
"""

from __future__ import annotations

import json
import math
import shlex

from monitor.assertion_examples import assertion_of, violation_fields, window_examples
from monitor.assertion_export import iso_utc
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult

SHOWN = 3  # ids named in a message; the export command gives the rest
ID_CHARS = 40  # an id longer than this is cut, so one odd id cannot flood the message


def examples_note(metric: MetricSpec, version: int, stage: str, window: WindowResult,
                  shown: int = SHOWN) -> str | None:
    """Two lines: up to ``shown`` example ids of ``window``'s sample, then the command
    that exports them all (in backticks: code in Slack and Markdown); None when
    ``metric`` is no assertion or the window holds no example."""
    try:
        assertion_of(metric.name, metric.aggregate)
    except ValueError:
        return None
    found = [example["id"] for _, example in window_examples(metric.aggregate, [window])]
    if not found:
        return None
    named = ", ".join(_id_text(i) for i in found[:shown])
    field = violation_fields(metric.aggregate)[0]
    violations = window.values.get(field, math.nan)
    counted = "" if math.isnan(violations) else f", {violations:.0f} {field.replace('_', ' ')}"
    return (f"example ids {named} ({min(shown, len(found))} of the {len(found)} "
            f"sampled{counted})\nall sampled: "
            f"`{export_command(metric.name, version, stage, window)}`")


def export_command(name: str, version: int, stage: str, window: WindowResult) -> str:
    """The ``monitor assertions export`` command line that writes the sample of exactly
    ``window`` (its segment, and windows starting from its start to before its end)."""
    return shlex.join(["monitor", "assertions", "export", name, "--stage", stage,
                       "--version", str(version), "--segment", window.segment,
                       "--since", iso_utc(window.window_start), "--until",
                       iso_utc(window.window_end), "--out", f"{name}.jsonl"])


def _id_text(value: object) -> str:
    """An id as JSON (a string id quoted, so ``"7"`` and ``7`` differ), cut when long."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= ID_CHARS else text[: ID_CHARS - 1] + "…"

