"""A source that computes a slice's states itself, and what it hands back.

The batch runner reads most sources chunk by chunk and feeds its own engine. A source
that runs elsewhere (Spark's executors, :mod:`monitor.batch.spark_engine`) runs the same
engine where the rows are and hands back only the merged states of the slice, with what
the runner needs to store it exactly as it stores its own: the rows read, the rows
validation refused and those a per-event function failed on (as the payloads their dead
letters are keyed by) and the lines that did not parse. Storing, run records, watermarks
and alerts stay the runner's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

from monitor.engine import FailedEvents
from monitor.partials import Partial, PartialKey
from monitor.spec import MetricSpec


@dataclass
class SliceStates:
    """A slice's merged states (every metric, segment and window it touched) and its
    rejects."""

    partials: dict[PartialKey, Partial]
    rows: int = 0  # rows read in the slice's range (with those rejected)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, row as JSON)
    unparsed: pd.DataFrame | None = None  # row (file:line), reason, excerpt


@runtime_checkable
class StateSource(Protocol):
    """A batch source that computes states where its rows are."""

    def check(self) -> None:
        """Fail early, with a clear message, if the source does not fit the stream."""

    def earliest(self) -> pd.Timestamp | None:
        """The earliest event time in the source (None when it is empty)."""

    def states(self, metrics: Sequence[MetricSpec], since: pd.Timestamp,
               until: pd.Timestamp, labels: pd.DataFrame | None) -> SliceStates:
        """The states of ``metrics`` (one stream's, one window width) over the events of
        ``[since, until)``, joined to ``labels`` (validated, the slice's label range) when
        the metrics join labels."""


def failed_payloads(chunk: pd.DataFrame, rejects: pd.DataFrame,
                    failed: Sequence[FailedEvents]) -> list[tuple[str, str]]:
    """The events per-event functions failed on (positions in the validated rows of
    ``chunk``, which validation refused ``rejects`` of) as ``(reason, the row as JSON)``,
    the reason naming the metric: dead letters as validation's are."""
    valid = chunk.index[~chunk.index.isin(rejects["row"])]
    return [payload for f in failed for payload in rejected_payloads(
        chunk, pd.DataFrame({"row": valid[f.rows], "reason": f.reasons()}))]


def rejected_payloads(chunk: pd.DataFrame, rejects: pd.DataFrame) -> list[tuple[str, str]]:
    """Each row validation refused, as ``(reason, the row as JSON)``: the payload its dead
    letter stores and is keyed by (see :mod:`monitor.batch.runner`)."""
    rows = chunk.loc[rejects["row"]]
    return [(reason, json.dumps(row, default=str))
            for reason, row in zip(rejects["reason"], rows.to_dict("records"), strict=True)]
