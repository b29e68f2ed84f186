"""A stream's data expectations as metrics: one per expectation, and a validation summary.

``mon.expectations("home", [metrics.expect_not_null("user_id"), ...])`` registers, for
each expectation, a metric ``home.not_null.user_id`` (the stream's name, then the
expectation's kind and column; give a mapping to name them yourself) whose default alert
rule fires when its ``failure_rate`` is above the expectation's ``tolerance`` — the
same test that sets its ``passed`` — and a metric ``home.expectations`` with the
per-window summary (how many passed and failed) whose rule fires when any failed. All
share the window, lateness, segments and owner given. Registration is all or nothing: a
bad expectation fails with an error naming its metric and registers none of them.

>>> import metrics
>>> from monitor import Monitor
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"user_id": "str?", "score": "float"})
>>> specs = mon.expectations("home", [metrics.expect_not_null("user_id"),
...                                   metrics.expect_in_range("score", low=0, high=1)])
>>> [spec.name for spec in specs]
['home.not_null.user_id', 'home.in_range.score', 'home.expectations']
>>> [rule.title for rule in specs[1].alerts]
['score outside [0, 1]']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from metrics.base import Aggregate
from metrics.expectations import InRange, InSet, Matches, NotNull, NoUnknownFields
from metrics.uniqueness import Unique
from metrics.validation import Judged, validation_summary
from monitor.alerts.rules import Threshold
from monitor.errors import DefinitionError
from monitor.spec import MetricSpec, StreamSpec

if TYPE_CHECKING:
    from monitor.registry import Monitor

SUMMARY = "expectations"  # the summary metric's name after the stream's


def register_expectations(mon: Monitor, stream: str | StreamSpec,
                          expectations: Sequence[Aggregate] | Mapping[str, Aggregate],
                          *, prefix: str | None = None, severity: str = "warning",
                          for_windows: int = 1, **options: Any) -> list[MetricSpec]:
    """Register the expectations' metrics and their summary (see the module); ``options``
    are :meth:`monitor.Monitor.metric`'s (window, lateness, segment_by, owner ...)."""
    stream_name = stream.name if isinstance(stream, StreamSpec) else str(stream)
    prefix = stream_name if prefix is None else prefix
    named = (dict(expectations) if isinstance(expectations, Mapping)
             else _named(prefix, expectations))
    if not named:
        raise DefinitionError(f"expectations of stream {stream_name!r}",
                              "give at least one expectation")
    registered: list[MetricSpec] = []
    try:
        for name, expectation in named.items():
            if not isinstance(expectation, Aggregate) or not isinstance(expectation, Judged):
                raise DefinitionError(f"metric {name!r}", f"is not an expectation "
                                      f"(metrics.expect_...): {expectation!r}")
            tolerance = float(getattr(expectation, "tolerance", 0.0))
            rule = Threshold("failure_rate", above=tolerance, for_windows=for_windows,
                             severity=severity, name=_title(expectation))
            registered.append(mon.metric(
                name, stream, expectation, alerts=[rule],
                **{"description": _describe(expectation), **options}))
        summary = validation_summary([spec.aggregate for spec in registered])
        rule = Threshold("failed", above=0.0, for_windows=for_windows, severity=severity,
                         name=f"{prefix}: an expectation failed")
        registered.append(mon.metric(
            f"{prefix}.{SUMMARY}", stream, summary, alerts=[rule],
            **{"description": f"How many of the {len(named)} expectations of {prefix} "
                              "each window passed and failed.", **options}))
    except BaseException:
        for spec in registered:  # all or nothing
            del mon.metrics[spec.name]
        raise
    return registered


def _label(expectation: Aggregate) -> str:
    column = getattr(expectation, "column", None)
    kind = expectation.kind.removeprefix("expect_")
    return kind if column is None else f"{kind}.{column}"


def _named(prefix: str, expectations: Sequence[Aggregate]) -> dict[str, Aggregate]:
    named: dict[str, Aggregate] = {}
    for expectation in expectations:
        label = (_label(expectation) if isinstance(expectation, Aggregate)
                 else type(expectation).__name__)
        name = f"{prefix}.{label}"
        if name in named:
            raise DefinitionError(f"metric {name!r}", "two expectations would have this "
                                  "name; pass a mapping {name: expectation} to name them")
        named[name] = expectation
    return named


def _title(expectation: Aggregate) -> str:
    """The default rule's name: what failing means."""
    column = getattr(expectation, "column", None)
    if isinstance(expectation, NotNull):
        what = f"{column} missing"
    elif isinstance(expectation, InRange):
        low = "-inf" if expectation.low is None else f"{expectation.low:g}"
        high = "inf" if expectation.high is None else f"{expectation.high:g}"
        what = f"{column} outside [{low}, {high}]"
    elif isinstance(expectation, InSet):
        what = f"{column} not in its {len(expectation.values)} allowed values"
    elif isinstance(expectation, Matches):
        what = f"{column} not matching {expectation.pattern!r}"
    elif isinstance(expectation, Unique):
        what = f"{column} repeated within a window"
    elif isinstance(expectation, NoUnknownFields):
        what = "events with unknown fields"
    else:
        what = f"{_label(expectation)} failing"
    tolerance = float(getattr(expectation, "tolerance", 0.0))
    return what if tolerance == 0 else f"{what} for over {tolerance:.2%} of events"


def _describe(expectation: Aggregate) -> str:
    tolerance = float(getattr(expectation, "tolerance", 0.0))
    allowed = "none may" if tolerance == 0 else f"at most {tolerance:.2%} may"
    return (f"Data expectation ({_title(expectation)}): the share of checked events that "
            f"fail it per window; {allowed}.")
