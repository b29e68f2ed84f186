"""Walk one alert over newly stored windows: the pure core of live evaluation.

The live stages keep, per alert, its lifecycle state and the start of the last window
they evaluated. ``walk`` checks each newer window against the rule, with the values of the
windows before it as history, exactly as the research backtest does, and skips windows at
or before the last evaluated one — so storing a window twice never fires twice.

>>> from datetime import datetime, timedelta, UTC
>>> from monitor.alerts.rules import Threshold
>>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
>>> hours = [(t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1), v)
...          for h, v in enumerate([1.0, 6.0, 7.0])]
>>> walked = walk(Threshold("x", above=5, for_windows=2), Position(), [], hours)
>>> [(step.transition, step.window_start.hour) for step in walked.steps]
[('pending', 1), ('firing', 2)]
>>> walk(Threshold("x", above=5, for_windows=2), walked.position, [], hours).steps
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.alerts.lifecycle import AlertState, Transition, step
from monitor.alerts.rules import Check, Rule

Window = tuple[datetime, datetime, float]  # start, end, value of the rule's field


@dataclass(frozen=True)
class Position:
    """Where an alert stands: its lifecycle state and the last window it has seen."""

    state: AlertState = field(default_factory=AlertState)
    last_window: datetime | None = None
    active_since: datetime | None = None  # first breached window of the current episode


@dataclass(frozen=True)
class Step:
    transition: Transition
    window_start: datetime
    window_end: datetime
    value: float
    check: Check


@dataclass(frozen=True)
class Walked:
    position: Position
    steps: list[Step]
    last: tuple[float, Check] | None  # value and check of the newest window walked


def walk(rule: Rule, position: Position, history: Sequence[float],
         windows: Sequence[Window]) -> Walked:
    """Advance over ``windows`` (sorted by start); ``history`` holds the values of the
    stored windows before the first new one, oldest first."""
    recent = list(history)[-rule.history_needed:] if rule.history_needed else []
    state, last_window, since = position.state, position.last_window, position.active_since
    steps: list[Step] = []
    last: tuple[float, Check] | None = None
    for start, end, value in windows:
        if last_window is not None and start <= last_window:
            continue
        value = float(value)
        check = rule.check(recent, value)
        state, transition = step(state, check, rule.for_windows)
        if transition == "pending" or (transition == "firing" and since is None):
            since = start
        elif state.status == "inactive":
            since = None
        if transition is not None:
            steps.append(Step(transition, start, end, value, check))
        last, last_window = (value, check), start
        if rule.history_needed:
            recent.append(value)
            del recent[: max(0, len(recent) - rule.history_needed)]
    return Walked(Position(state, last_window, since), steps, last)
