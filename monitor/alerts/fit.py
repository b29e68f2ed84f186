"""Whether an alert rule's options fit the metric it watches, said at registration.

A rule alone cannot know what its field means: ``confidence=`` tests a proportion of the
window's events, so it needs a field that is one, and a seasonal baseline needs seasons
made of whole windows. The registry asks :func:`rule_problem` for each rule of a metric
(the window is checked before) and raises its answer, naming the metric.

>>> import metrics
>>> from monitor.alerts.rules import Change, Threshold
>>> rule_problem(Threshold("rate", below=0.2, confidence=0.99), metrics.rate("clicked"), "1h")
>>> problem = rule_problem(Threshold("mean", above=900, confidence=0.99),
...                        metrics.mean("latency_ms"), "1h")
>>> print(problem)  # wrapped here: doctests normalize whitespace
alert rule threshold:mean:>900 at 99%: confidence= tests a proportion of the window's
events (the field of a rate, share or null_rate), and 'mean' of a mean aggregate is not
one (a mean's noise needs its variance, which the mean aggregate does not keep);
use min_count= to leave out small windows instead
>>> print(rule_problem(Change("rate", season="1d"), metrics.rate("clicked"), "2d"))
alert rule change:rate:both 20% vs same time 4x1d: season '1d' is not a whole number of
the metric's '2d' windows; pick a multiple of '2d'
"""

from __future__ import annotations

from typing import Any

from monitor.alerts.rules import Rule
from monitor.windows import Windows, parse_duration_ns

# Aggregates whose value is a share of the window's events, by kind: their field.
PROPORTIONS = {"rate": "rate", "share": "share", "null_rate": "null_rate"}


def rule_problem(rule: Rule, aggregate: Any, window: str) -> str | None:
    """What is wrong with ``rule`` on a metric of ``aggregate`` in ``window``-long windows,
    or None when it fits."""
    kind = getattr(aggregate, "kind", type(aggregate).__name__)
    if rule.confidence is not None and kind == "labelled":
        # The stored count of a label-joined window is its predictions; the test would
        # need its labelled rows, which arrive over the horizon.
        return (f"alert rule {rule.title}: confidence= is not supported on a metric that "
                f"joins labels yet (its window's count is the predictions, not the "
                f"labelled rows a test of {rule.field!r} needs); use min_count= to leave "
                f"out small windows, and mature_at= on Labels to wait for the labels")
    if rule.confidence is not None and PROPORTIONS.get(kind) != rule.field:
        return (f"alert rule {rule.title}: confidence= tests a proportion of the window's "
                f"events (the field of a rate, share or null_rate), and {rule.field!r} of a "
                f"{kind} aggregate is not one"
                + (" (a mean's noise needs its variance, which the mean aggregate does not "
                   "keep)" if kind == "mean" else "")
                + "; use min_count= to leave out small windows instead")
    season = getattr(rule, "season", None)
    if season is not None and parse_duration_ns(season) % Windows.parse(window).width_ns:
        return (f"alert rule {rule.title}: season {season!r} is not a whole number of the "
                f"metric's {window!r} windows; pick a multiple of {window!r}")
    return None
