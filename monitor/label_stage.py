"""A stage's step from validated predictions to the joined rows a labelled metric reads.

Research and batch both validate the label events against the label stream, join them
with :func:`monitor.label_join.join_labels`, and keep what was refused (a label that fails
its schema, or whose id is null or empty) with its row and reason. Pure but for reading
a label file when research is given a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.errors import MetricComputeError
from monitor.label_join import LabelCounts, join_labels
from monitor.sources.files import read_events
from monitor.spec import MetricSpec

LabelsLike = pd.DataFrame | str | Path | None


@dataclass(frozen=True)
class JoinedRun:
    events: pd.DataFrame  # the predictions with their labels (monitor.label_join)
    counts: LabelCounts
    rejects: pd.DataFrame  # row (the label's index label, or file:line), reason
    end: pd.Timestamp | None  # the latest prediction or label time: "the end of the data"


def joined_events(metric: MetricSpec, predictions: pd.DataFrame, labels: LabelsLike
                  ) -> JoinedRun | None:
    """``predictions`` (validated) joined to ``labels`` (raw events, or a file of them) for
    a metric with a label source; None for a metric without one. A MetricComputeError
    when the labels are missing, or given to a metric that has no label source."""
    source = metric.labels
    if source is None:
        if labels is not None:
            raise MetricComputeError(metric.name, "has no label source, so it takes no "
                                     "labels; declare labels=Labels(...) in mon.metric()")
        return None
    if labels is None:
        raise MetricComputeError(metric.name, f"joins labels from stream "
                                 f"{source.stream.name!r}: pass its label events (a "
                                 "DataFrame or a file)")
    unparsed = pd.DataFrame({"row": [], "reason": []})
    if not isinstance(labels, pd.DataFrame):
        read = read_events(labels)
        labels, unparsed = read.events, read.rejects[["row", "reason"]]
    clean, invalid = source.stream.schema.validate(labels)
    joined = join_labels(predictions, clean, source.rule(metric.stream.time))
    kept = labels.index[~labels.index.isin(invalid["row"])]  # clean's rows, in order
    refused = joined.rejects.assign(row=kept[joined.rejects["row"].to_numpy()])
    rejects = pd.concat([unparsed, invalid, refused], ignore_index=True)
    counts = joined.counts + LabelCounts(offered=len(invalid) + len(unparsed),
                                         rejected=len(invalid) + len(unparsed))
    times = [t for t in (predictions[metric.stream.time].max(),
                         clean[source.stream.time].max()) if not pd.isna(t)]
    return JoinedRun(joined.events, counts, rejects, max(times) if times else None)
