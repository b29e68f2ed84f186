"""When a window of a label-based metric is ready to be judged by its alert rules.

Labels keep arriving for ``horizon`` after a prediction, so a fresh window of an accuracy
or an AUC is computed from its first few labels: a window of three labelled predictions
out of a thousand must not page anyone. A window is **mature** once its label coverage
reaches the source's ``mature_at``, or once its horizon has passed (``window end +
horizon <= as_of``: no label can change it any more).

Alert rules walk a segment's windows in order and never go back to one they passed, so
rules evaluate the **mature prefix** of a segment's windows: up to, not including, its
first immature window. A later window that is mature sooner waits for the earlier ones;
as every window is mature once its horizon passes, none waits for ever. The prefix holds
across stores too: live evaluation also looks at the windows stored since an alert's last
judged one (an earlier batch slice or run), and waits while one of them is immature.
Live evaluation
(:mod:`monitor.alerts.evaluate`, as of the time it runs) and the research backtest
(:mod:`monitor.alerts.backtest`, as of the end of the data or a given time) both cut the
windows here. A window is evaluated once, when it becomes mature; labels that come after
revise its stored values, not the alerts already decided on it.

>>> from datetime import datetime, timedelta, UTC
>>> t = datetime(2026, 3, 1, tzinfo=UTC)
>>> windows = [(t, 0.97), (t + timedelta(hours=1), 0.5), (t + timedelta(hours=2), 0.99)]
>>> mature_prefix(0.95, timedelta(days=1), windows, as_of=t + timedelta(hours=3))
1
>>> mature_prefix(0.95, timedelta(days=1), windows, as_of=t + timedelta(days=2))
3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd


def is_mature(mature_at: float, horizon: timedelta, window_end: datetime, coverage: float,
              as_of: datetime) -> bool:
    """Whether a window ending at ``window_end`` with ``coverage`` is mature at ``as_of``."""
    if _utc(window_end) + horizon <= _utc(as_of):
        return True
    return not math.isnan(coverage) and coverage >= mature_at


def mature_prefix(mature_at: float, horizon: timedelta,
                  windows: Sequence[tuple[datetime, float]], as_of: datetime) -> int:
    """How many of ``windows`` ((end, label coverage), in window order) rules may
    evaluate: those before the first immature one."""
    for i, (end, coverage) in enumerate(windows):
        if not is_mature(mature_at, horizon, end, coverage, as_of):
            return i
    return len(windows)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise ValueError(f"naive time {moment!r}: maturity compares tz-aware times")
    return stamp.tz_convert("UTC")
