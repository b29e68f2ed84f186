"""Which realized metric an estimate of performance is compared with, once labels arrive.

An estimate (``metrics.estimated_performance(score, label, reference, threshold)``) and the
label-joined metrics that realize it are separate metrics, stored apart like every other.
This module pairs them from their definitions alone — the dicts the catalog stores, or
``spec.to_dict()`` of a registered :class:`~monitor.spec.MetricSpec` — so the dashboard and
a user reading the values find the same pairs. It reads no database.

The rule:

- **Automatic, by columns**: a metric joined to labels (``labels=``) whose aggregate is
  ``metrics.auc(label, score)`` realizes ``estimated_roc_auc`` of every estimate on the
  same stream, with the same ``label`` and ``score`` columns and the same window. Nothing
  else is paired automatically.
- **Declared**: accuracy, precision and recall read a *prediction* column, and a
  definition cannot say whether that column is the estimate's ``score >= threshold``. So
  ``metrics.accuracy/precision/recall(label, prediction)`` joined to labels realizes
  ``estimated_accuracy``/``_precision``/``_recall`` only when declared:
  ``performance_pairs(specs, declared={"click_accuracy": "click_estimate"})``. A
  declaration is checked (same stream, label column and window; a labelled metric whose
  kind has an estimate) and a ValueError names both metrics when it cannot hold. Declaring
  an AUC with the same columns is allowed and changes nothing; an AUC of another score is
  refused, since it is not what the estimate estimates.

Segments pair by name: a window of segment ``device=ios`` of the estimate sits beside the
same window and segment of the realized metric (the overall segment ``*`` always exists).

>>> specs = {
...     "click_estimate": {"stream": {"name": "home"}, "window": "1h", "aggregate": {
...         "kind": "estimated_performance", "score": "score", "label": "clicked",
...         "reference": "training", "threshold": 0.5}},
...     "click_auc": {"stream": {"name": "home"}, "window": "1h", "labels": {}, "aggregate": {
...         "kind": "labelled", "inner": {"kind": "auc", "label": "clicked", "score": "score"}}},
...     "click_accuracy": {"stream": {"name": "home"}, "window": "1h", "labels": {},
...         "aggregate": {"kind": "labelled", "inner": {
...             "kind": "accuracy", "label": "clicked", "prediction": "predicted"}}},
... }
>>> [(p.estimated_field, p.realized, p.realized_field, p.declared)
...  for p in performance_pairs(specs)]
[('estimated_roc_auc', 'click_auc', 'auc', False)]
>>> [(p.estimated_field, p.realized) for p in performance_pairs(
...     specs, declared={"click_accuracy": "click_estimate"})]
[('estimated_roc_auc', 'click_auc'), ('estimated_accuracy', 'click_accuracy')]
>>> declarable(specs, "click_estimate")
['click_accuracy']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.windows import Windows

__all__ = ["ESTIMATE_KIND", "Estimate", "PerformancePair", "declarable", "estimate_of",
           "performance_pairs", "sampling_error_field"]

ESTIMATE_KIND = "estimated_performance"
# The realized aggregate's kind -> (its field, the estimate's field).
REALIZED_FIELDS = {"auc": ("auc", "estimated_roc_auc"),
                   "accuracy": ("accuracy", "estimated_accuracy"),
                   "precision": ("precision", "estimated_precision"),
                   "recall": ("recall", "estimated_recall")}
AUTOMATIC_KINDS = frozenset({"auc"})  # the kinds that read the estimate's own score

Spec = Mapping[str, Any]


def sampling_error_field(estimated_field: str) -> str:
    """The field holding one standard deviation of ``estimated_field``."""
    return f"{estimated_field}_sampling_error"


@dataclass(frozen=True)
class Estimate:
    """What an estimate of performance reads: its stream, columns, threshold and window."""

    stream: str
    score: str
    label: str
    threshold: float
    window: str


@dataclass(frozen=True)
class PerformancePair:
    """Field ``estimated_field`` of metric ``estimate`` is realized by field
    ``realized_field`` of the label-joined metric ``realized``; ``declared`` when a user
    said so, else paired by columns."""

    estimate: str
    estimated_field: str
    realized: str
    realized_field: str
    declared: bool = False

    @property
    def sampling_error_field(self) -> str:
        return sampling_error_field(self.estimated_field)


def estimate_of(spec: Spec) -> Estimate | None:
    """What an estimate reads, or None when ``spec`` is not an estimate of performance (or
    a stored one too malformed to say)."""
    aggregate = _mapping(spec.get("aggregate"))
    score, label = aggregate.get("score"), aggregate.get("label")
    threshold = aggregate.get("threshold", 0.5)
    if (aggregate.get("kind") != ESTIMATE_KIND or not isinstance(score, str)
            or not isinstance(label, str) or not isinstance(threshold, int | float)):
        return None
    return Estimate(str(_mapping(spec.get("stream")).get("name")), score, label,
                    float(threshold), str(spec.get("window")))


def performance_pairs(specs: Mapping[str, Spec], declared: Mapping[str, str] | None = None
                      ) -> list[PerformancePair]:
    """Every pair of an estimate's field and the realized metric's field, automatic ones
    first (see the module for the rule); ``declared`` maps a realized metric's name to the
    estimate it realizes. Sorted by estimate, then realized metric."""
    declared = dict(declared or {})
    pairs: list[PerformancePair] = []
    for estimate_name, spec in sorted(specs.items()):
        estimate = estimate_of(spec)
        if estimate is None:
            continue
        for realized_name, other in sorted(specs.items()):
            inner = _realizing(other, estimate)
            if inner is not None and inner["kind"] in AUTOMATIC_KINDS \
                    and inner.get("score") == estimate.score:
                realized_field, estimated_field = REALIZED_FIELDS[inner["kind"]]
                pairs.append(PerformancePair(estimate_name, estimated_field, realized_name,
                                             realized_field))
    automatic = {(p.estimate, p.realized) for p in pairs}
    for realized_name, estimate_name in sorted(declared.items()):
        pair = _declared_pair(specs, realized_name, estimate_name)
        if (estimate_name, realized_name) not in automatic:
            pairs.append(pair)
    return pairs


def declarable(specs: Mapping[str, Spec], estimate_name: str) -> list[str]:
    """The label-joined accuracy, precision and recall metrics that could be declared to
    realize ``estimate_name`` (same stream, label column and window), by name; none when
    ``estimate_name`` is no registered estimate."""
    estimate = estimate_of(specs.get(estimate_name, {}))
    if estimate is None:
        return []
    return sorted(name for name, spec in specs.items()
                  if (inner := _realizing(spec, estimate)) is not None
                  and inner["kind"] not in AUTOMATIC_KINDS)


def _declared_pair(specs: Mapping[str, Spec], realized_name: str, estimate_name: str
                   ) -> PerformancePair:
    what = f"{realized_name!r} declared to realize {estimate_name!r}"
    for name in (realized_name, estimate_name):
        if name not in specs:
            raise ValueError(f"{what}: no metric named {name!r} is registered")
    estimate = estimate_of(specs[estimate_name])
    if estimate is None:
        raise ValueError(f"{what}: {estimate_name!r} is not a "
                         "metrics.estimated_performance metric")
    inner = _realizing(specs[realized_name], estimate)
    if inner is None:
        raise ValueError(
            f"{what}: the realized metric must be joined to labels (labels=), be one of "
            f"metrics.{', metrics.'.join(REALIZED_FIELDS)}, and read the label column "
            f"{estimate.label!r} of stream {estimate.stream!r} in {estimate.window} "
            "windows, as the estimate does")
    if inner["kind"] in AUTOMATIC_KINDS and inner.get("score") != estimate.score:
        raise ValueError(f"{what}: it is the AUC of score {inner.get('score')!r}, the "
                         f"estimate's score is {estimate.score!r}")
    realized_field, estimated_field = REALIZED_FIELDS[inner["kind"]]
    return PerformancePair(estimate_name, estimated_field, realized_name, realized_field,
                           declared=True)


def _realizing(spec: Spec, estimate: Estimate) -> Mapping[str, Any] | None:
    """The inner aggregate of a label-joined metric on the estimate's stream, label column
    and window whose kind has an estimate; None for any other metric."""
    aggregate = _mapping(spec.get("aggregate"))
    inner = _mapping(aggregate.get("inner"))
    # only the registry wraps an aggregate in "labelled", for a metric declared with labels=
    if aggregate.get("kind") != "labelled" or inner.get("kind") not in REALIZED_FIELDS:
        return None
    same = (_mapping(spec.get("stream")).get("name") == estimate.stream
            and inner.get("label") == estimate.label
            and _same_window(spec.get("window"), estimate.window))
    return inner if same else None


def _same_window(a: object, b: str) -> bool:
    """Whether two window texts are the same windows ("60m" and "1h" are)."""
    try:
        return Windows.parse(str(a)) == Windows.parse(b)
    except ValueError:
        return False


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
