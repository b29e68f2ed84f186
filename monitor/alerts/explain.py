"""An alert's detail with the window's own reason: what the rule found, and why the value
is what it is when the metric can say (a drift flag: its statistic, the window's count
and the adjusted p-value). The live evaluation and the backtest both write it, from the
same window values, so their texts are the same."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.alerts.walk import Step
from monitor.spec import MetricSpec

BREACHES = ("pending", "firing")


def explained(metric: MetricSpec, field: str, step: Step, values: Mapping[str, float],
              count: int | None) -> str:
    """``step``'s detail, with the metric's reason for its window's ``field`` when the
    step is a breach (pending or firing)."""
    detail = step.check.detail
    if step.transition not in BREACHES:
        return detail
    reason = metric.aggregate.explain(field, values, count)
    return detail if not reason else f"{detail}; {reason}"
